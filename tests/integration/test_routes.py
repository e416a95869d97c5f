"""test_routes.py - per-route options: cache=off and cache_ttl, ratelimit=off
and a route's own rate, burst and key, and FILE:LINE errors for bad ones."""
import subprocess

from harness import RINGFRONT, Conn, Ringfront, build_request, check, config, free_port
from test_cache import CountingBackend


def stack(routes, extra):
    b = CountingBackend()
    ini = config([b.addr], routes=routes) + extra
    return Ringfront(ini), b


def statuses(port, path, n, headers=None):
    c = Conn(port)
    out = []
    for _ in range(n):
        c.send(build_request("GET", path, headers=headers))
        r = c.read_response()
        out.append((r.status, r.header("X-Cache-Status")))
    c.close()
    return out


def test_route_cache_options():
    rf, b = stack([("/", "app"), ("/nocache", "app cache=off"), ("/ttl", "app cache_ttl=30s")],
                  "\n[cache]\nmemory = 4m\n")
    check(statuses(rf.port, "/fresh", 2) == [(200, "MISS"), (200, "HIT")])
    got = statuses(rf.port, "/nocache/fresh", 3)
    check(got == [(200, None)] * 3, got)
    check(b.count[b"/nocache/fresh"] == 3, b.count)
    # no caching headers, but the route gives a lifetime
    got = statuses(rf.port, "/ttl/plain", 2)
    check(got == [(200, "MISS"), (200, "HIT")], got)
    check(statuses(rf.port, "/plain", 2) == [(200, "MISS"), (200, "MISS")])
    rf.stop()


def test_route_rate_limits():
    rf, b = stack([("/", "app"), ("/free", "app ratelimit=off"),
                   ("/strict", "app rate=1/60s burst=1")],
                  "\n[ratelimit]\nrate = 3/60s\nburst = 3\n")
    got = [s for s, _ in statuses(rf.port, "/free/x", 6)]
    check(got == [200] * 6, got)
    got = [s for s, _ in statuses(rf.port, "/strict/x", 3)]
    check(got == [200, 429, 429], got)
    got = [s for s, _ in statuses(rf.port, "/other", 4)]
    check(got == [200, 200, 200, 429], got)
    rf.stop()


def test_route_option_errors(tmp="/tmp"):
    path = "%s/rf-route-%d.ini" % (tmp, free_port())
    for line, msg in (("/x = app bogus=1", "unknown route option"),
                      ("/x = app cache=maybe", "cache"),
                      ("/x = app rate=fast", "rate"),
                      ("/x = app burst", "name=value")):
        with open(path, "w") as f:
            f.write("[upstream app]\nservers = 127.0.0.1:2\n[route]\n/ = app\n%s\n" % line)
        p = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True)
        check(p.returncode != 0 and ("%s:5:" % path) in p.stderr and msg in p.stderr, (line, p.stderr))
