"""test_ratelimit.py - admission through the real binary: burst then 429
with a JSON body and RateLimit headers, rejected requests never reach the
backend, API keys and tiers (401 for missing keys, globally or per
route), bans, the line protocol, and exact counts with two workers
hammering one key."""
import os
import subprocess
import tempfile
import threading
import time

from harness import (RINGFRONT, Backend, Conn, Ringfront, build_request, check, config,
                     free_port, raw_exchange)


def stack(rl, workers=1, extra=""):
    b = Backend()
    ini = config([b.addr], workers=workers) + "\n[ratelimit]\n" + rl + "\n" + extra
    return Ringfront(ini), b


def test_burst_then_429():
    rf, b = stack("rate = 5/60s\nburst = 5\nkey = ip")
    before = b.stats()["requests"]
    c = Conn(rf.port)
    for i in range(5):
        c.send(build_request("GET", "/users/%d" % i))
        r = c.read_response()
        check(r.status == 200, r)
        check(r.header("RateLimit-Limit") == "5", r.headers)
        check(r.header("RateLimit-Remaining") == str(4 - i), r.headers)
    c.send(build_request("GET", "/users/9"))
    r = c.read_response()
    check(r.status == 429, r)
    body = r.json()
    check(body["code"] == 429 and body["retry_after"] >= 1, body)
    check(int(r.header("Retry-After")) >= 1, r.headers)
    check(r.header("RateLimit-Remaining") == "0", r.headers)
    check(r.header("Content-Type") == "application/json", r.headers)
    # the connection stays usable, and the rejected request did not go out
    c.send(build_request("GET", "/users/10"))
    check(c.read_response().status == 429)
    c.close()
    check(b.stats()["requests"] - before == 5, "backend saw rejected requests")
    rf.stop()


def test_headers_off():
    rf, _ = stack("rate = 5/60s\nburst = 5\nrate_limit_headers = off")
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/1"))
    r = c.read_response()
    check(r.status == 200 and r.header("RateLimit-Limit") is None, r.headers)
    c.close()
    rf.stop()


def test_api_keys_tiers_and_401():
    rl = ("rate = 100/60s\nburst = 100\nkey = header:X-API-Key\nrequire_key = on\n"
          "[tier free]\nrate = 2/60s\nburst = 2\n[tier premium]\nrate = 10/60s\nburst = 10\n"
          "[api_keys]\nk-free = free\nk-prem = premium\n")
    rf, _ = stack(rl)
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/1"))
    r = c.read_response()
    check(r.status == 401 and r.json()["code"] == 401, r)
    c.send(build_request("GET", "/users/1", headers={"X-API-Key": "unknown"}))
    check(c.read_response().status == 401)
    got = []
    for _ in range(4):
        c.send(build_request("GET", "/users/1", headers={"X-API-Key": "k-free"}))
        got.append(c.read_response().status)
    check(got == [200, 200, 429, 429], got)
    got = []
    for _ in range(4):
        c.send(build_request("GET", "/users/1", headers={"X-API-Key": "k-prem"}))
        got.append(c.read_response().status)
    check(got == [200] * 4, got)
    c.close()
    rf.stop()


KEYS = ("[tier free]\nrate = 3/60s\nburst = 3\n[api_keys]\nk-free = free\n")


def statuses(c, path, n, key=None):
    got = []
    for _ in range(n):
        c.send(build_request("GET", path, headers={"X-API-Key": key} if key else None))
        r = c.read_response()
        if r.status == 401:
            check(r.json()["code"] == 401, r)
        got.append(r.status)
    return got


def expect(c, path, n, want, key=None):
    got = statuses(c, path, n, key)
    check(got == want, "%s key %s: %s, expected %s" % (path, key, got, want))


def test_require_key_per_route():
    # off in [ratelimit], on for /echo (the [ratelimit] buckets) and for
    # /bytes/ (its own rate and buckets)
    b = Backend()
    rl = "\n[ratelimit]\nrate = 100/60s\nburst = 100\nkey = header:X-API-Key\n" + KEYS
    rf = Ringfront(config([b.addr], routes=[("/", "app"), ("/echo", "app require_key=on"),
                                             ("/bytes/", "app rate=50/60s require_key=on")]) + rl)
    c = Conn(rf.port)
    expect(c, "/users/1", 2, [200, 200])
    expect(c, "/users/1", 1, [200], key="nope")   # unknown key: the address limit
    expect(c, "/echo/a", 2, [401, 401])
    expect(c, "/echo/a", 1, [401], key="nope")
    expect(c, "/bytes/4", 1, [401])
    # a known key passes, and /echo spends the same bucket as / does
    expect(c, "/echo/a", 2, [200, 200], key="k-free")
    expect(c, "/users/1", 2, [200, 429], key="k-free")
    expect(c, "/bytes/4", 1, [200], key="k-free")
    c.close()
    rf.stop()

    # on in [ratelimit], off for /health; a route with its own rate keeps it on
    rl = ("\n[ratelimit]\nrate = 100/60s\nburst = 100\nkey = header:X-API-Key\n"
          "require_key = on\n" + KEYS)
    rf = Ringfront(config([b.addr], routes=[("/", "app"), ("/health", "app require_key=off"),
                                             ("/bytes/", "app rate=50/60s")]) + rl)
    c = Conn(rf.port)
    expect(c, "/users/1", 1, [401])
    expect(c, "/health", 3, [200] * 3)
    expect(c, "/bytes/4", 1, [401])
    got = statuses(c, "/health", 3, key="k-free") + statuses(c, "/users/1", 1, key="k-free")
    check(got == [200, 200, 200, 429], got)   # one bucket per key for both routes
    c.close()
    rf.stop()


def test_require_key_per_route_config_errors():
    fd, path = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
    os.close(fd)
    bad = [("/a = app require_key=on", "", "needs a [ratelimit] section with key = header:NAME"),
           ("/a = app key=ip require_key=on", "key = header:X-API-Key",
            "needs ratelimit=on and the [ratelimit] key"),
           ("/a = app require_key=yes", "", "expected one of: default off on")]
    try:
        for route, key, msg in bad:
            with open(path, "w") as f:
                f.write(config(["127.0.0.1:2"], routes=[("/", "app")]) + route +
                        "\n[ratelimit]\n" + key + "\n")
            p = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True)
            check(p.returncode == 1, p)
            check(("%s:14:" % path) in p.stderr and msg in p.stderr, p.stderr)
    finally:
        os.unlink(path)


def test_line_protocol():
    lport = free_port()
    rf, _ = stack("rate = 3/60s\nburst = 3\nlisten = 127.0.0.1:%d" % lport)
    c = Conn(lport)
    c.send(b"10.0.0.1\n10.0.0.1\n10.0.0.1\n10.0.0.1\n10.0.0.2\n")
    data = b""
    while data.count(b"\n") < 5:
        data += c.sock.recv(100)
    check(data == b"OK\nOK\nOK\nERROR\nOK\n", data)
    c.close()
    # binary junk gets ERROR and a close, never a crash
    out = raw_exchange(lport, b"bad\x00key\n10.0.0.3\n")
    check(out == b"ERROR\n", out)
    out = raw_exchange(lport, b"x" * 400 + b"\n")
    check(out == b"ERROR\n", out)
    rf.stop()


def test_two_workers_no_double_spend():
    rf, b = stack("rate = 40/60s\nburst = 40\nkey = ip", workers=2)
    statuses = []
    lock = threading.Lock()

    def client():
        c = Conn(rf.port)
        for _ in range(30):
            c.send(build_request("GET", "/users/1"))
            st = c.read_response().status
            with lock:
                statuses.append(st)
        c.close()

    ts = [threading.Thread(target=client) for _ in range(8)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    elapsed = time.time() - t0
    ok = statuses.count(200)
    check(len(statuses) == 240, len(statuses))
    # burst + what the rate refilled meanwhile (one per 1.5 s), never more
    bound = 40 + int(elapsed / 1.5) + 1
    check(40 <= ok <= bound, "admitted %d of 240 with burst 40 in %.1fs" % (ok, elapsed))
    check(statuses.count(429) == 240 - ok, statuses)
    rf.stop()


def test_bans_escalate():
    rf, _ = stack("rate = 2/60s\nburst = 2\nban_after = 3\nban_time = 300s")
    c = Conn(rf.port)
    got = []
    for _ in range(6):
        c.send(build_request("GET", "/users/1"))
        r = c.read_response()
        got.append((r.status, int(r.header("Retry-After") or 0)))
    c.close()
    check([s for s, _ in got] == [200, 200, 429, 429, 429, 429], got)
    check(got[-1][1] >= 290, "banned key should wait ~300 s: %s" % got)
    rf.stop()
