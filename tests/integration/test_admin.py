"""test_admin.py - the admin listener: bearer token, JSON errors, /stats and
/metrics reflecting real traffic, and the loopback rule for tokens."""
import subprocess

from harness import (RINGFRONT, Backend, Conn, Ringfront, build_request, check,
                     config, free_port, request)


def admin_stack(token=""):
    b = Backend()
    aport = free_port()
    extra = "\n[admin]\nlisten = 127.0.0.1:%d\ntoken = %s\n" % (aport, token)
    rf = Ringfront(config([b.addr]) + extra)
    return rf, aport


def test_stats_and_metrics_follow_traffic():
    rf, aport = admin_stack()
    for i in range(7):
        check(request(rf.port, "GET", "/users/%d" % i).status == 200)
    r = request(aport, "GET", "/stats")
    check(r.status == 200 and r.header("Content-Type") == "application/json", r)
    st = r.json()
    check(sum(w["requests"] for w in st["workers"]) >= 7, st)
    check(st["upstreams"][0]["name"] == "app", st)
    check(len(st["upstreams"][0]["servers"]) == 1, st)
    r = request(aport, "GET", "/metrics")
    check(r.status == 200 and r.header("Content-Type").startswith("text/plain"), r)
    text = r.body.decode()
    check("# TYPE ringfront_requests_total counter" in text, text[:300])
    total = sum(int(l.split()[-1]) for l in text.splitlines()
                if l.startswith("ringfront_requests_total{"))
    check(total >= 7, text)
    # keep-alive on the admin connection, and JSON 404/405 errors
    c = Conn(aport)
    c.send(build_request("GET", "/nope"))
    r = c.read_response()
    check(r.status == 404 and r.json()["code"] == 404, r)
    c.send(build_request("DELETE", "/stats"))
    r = c.read_response()
    check(r.status == 405 and r.header("Allow") == "GET", r)
    c.send(build_request("GET", "/stats"))
    check(c.read_response().status == 200)
    c.close()
    rf.stop()


def test_token_required():
    rf, aport = admin_stack(token="s3cret")
    r = request(aport, "GET", "/stats")
    check(r.status == 401 and r.json()["code"] == 401, r)
    r = request(aport, "GET", "/stats", headers={"Authorization": "Bearer wrong!"})
    check(r.status == 401, r)
    r = request(aport, "GET", "/stats", headers={"Authorization": "Bearer s3cret"})
    check(r.status == 200, r)
    rf.stop()


def test_admin_off_loopback_needs_token(tmp="/tmp"):
    path = "%s/rf-admin-%d.ini" % (tmp, free_port())
    with open(path, "w") as f:
        f.write("[upstream app]\nservers = 127.0.0.1:2\n[admin]\nlisten = 0.0.0.0:9999\n")
    p = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True)
    check(p.returncode != 0 and ("%s:3:" % path) in p.stderr and "token" in p.stderr, p)
    with open(path, "a") as f:
        f.write("token = abc\n")
    p = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True)
    check(p.returncode == 0, p)
