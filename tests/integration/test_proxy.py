"""test_proxy.py - the core reverse proxy through real sockets: routing,
round robin, forwarding headers, bodies both ways, keep-alive pooling,
pipelining, HTTP/1.0, HEAD and bodiless statuses."""
import hashlib  # noqa: F401
import os
import subprocess

from harness import (Backend, Conn, Ringfront, build_request, check, config,
                     request)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def stack(workers=1, n=2, server="", upstream="", routes=None, flags=()):
    backends = [Backend(*flags) for _ in range(n)]
    rf = Ringfront(config([b.addr for b in backends], server=server,
                          upstream=upstream, routes=routes, workers=workers))
    return rf, backends


def test_get_round_robin():
    rf, (b1, b2) = stack()
    seen = []
    for i in range(6):
        r = request(rf.port, "GET", "/users/%d" % (i + 1))
        check(r.status == 200, r)
        check(r.json()["id"] == i + 1, r)
        seen.append(r.header("X-Handled-By"))
    names = {"app-server-%d" % b1.port, "app-server-%d" % b2.port}
    check(set(seen) == names, seen)
    check(all(seen[i] != seen[i + 1] for i in range(5)), "not alternating: %s" % seen)
    rf.stop()


def test_forwarding_headers():
    rf, _ = stack(n=1)
    r = request(rf.port, "GET", "/headers", headers=[
        ("Connection", "keep-alive, X-Secret"), ("X-Secret", "hop"),
        ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Connection", "x"),
        ("X-Forwarded-For", "10.1.2.3"), ("Via", "1.0 edge"), ("X-Custom", "kept")])
    check(r.status == 200, r)
    got = r.json()
    hdrs = {}
    for k, v in got["headers"]:
        hdrs.setdefault(k.lower(), []).append(v)
    check(hdrs.get("x-forwarded-for") == ["10.1.2.3, 127.0.0.1"], hdrs)
    check(hdrs.get("x-forwarded-proto") == ["http"], hdrs)
    check(hdrs.get("via") == ["1.0 edge, 1.1 ringfront"], hdrs)
    check(hdrs.get("x-custom") == ["kept"], hdrs)
    for hop in ("connection", "x-secret", "keep-alive", "te", "proxy-connection"):
        check(hop not in hdrs, "%s forwarded: %s" % (hop, hdrs))
    rid = hdrs.get("x-request-id", [""])[0]
    check(len(rid) == 32 and r.header("X-Request-Id") == rid, (rid, r.headers))
    r = request(rf.port, "GET", "/headers", headers={"X-Request-Id": "abc-123"})
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    check(hdrs["x-request-id"] == "abc-123", hdrs)
    check(r.header("X-Request-Id") == "abc-123", r.headers)
    rf.stop()


def test_post_bodies():
    rf, _ = stack(n=1)
    body = os.urandom(5000)
    r = request(rf.port, "POST", "/echo", body=body)
    check(r.status == 200 and r.json() == {"bytes": 5000, "sha": fnv1a64(body)}, r)
    # chunked request body, several chunks with an extension
    c = Conn(rf.port)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    r = c.read_response()
    check(r.status == 200 and r.json()["bytes"] == 11 and r.json()["sha"] == fnv1a64(b"hello world"), r)
    # the connection stays usable after a chunked request
    c.send(build_request("GET", "/users/5"))
    check(c.read_response().json()["id"] == 5)
    c.close()
    rf.stop()


def test_large_bodies_streamed():
    rf, _ = stack(n=1)
    data = os.urandom(10 * 1024 * 1024)
    path = "/tmp/rf-test-10mb-%d" % os.getpid()
    with open(path, "wb") as f:
        f.write(data)
    try:
        url = "http://127.0.0.1:%d/echo" % rf.port
        out = subprocess.run(["curl", "-s", "--data-binary", "@" + path, url],
                             capture_output=True, timeout=60).stdout
        check(b'"bytes":10485760' in out and fnv1a64(data).encode() in out, out[:200])
        out = subprocess.run(["curl", "-s", "-H", "Transfer-Encoding: chunked",
                              "--data-binary", "@" + path, url],
                             capture_output=True, timeout=60).stdout
        check(b'"bytes":10485760' in out and fnv1a64(data).encode() in out, out[:200])
    finally:
        os.unlink(path)
    r = request(rf.port, "GET", "/bytes/10000000", timeout=30)
    check(r.status == 200 and len(r.body) == 10000000, (r.status, len(r.body)))
    check(r.body[:26] == b"abcdefghijklmnopqrstuvwxyz", r.body[:30])
    r = request(rf.port, "GET", "/chunked/300000", timeout=30)
    check(r.status == 200 and len(r.body) == 300000, (r.status, len(r.body)))
    check(r.header("Transfer-Encoding") == "chunked", r.headers)
    rf.stop()


def test_keepalive_pooling():
    rf, (b1, b2) = stack(workers=2)
    before = b1.stats()["connections"] + b2.stats()["connections"]
    for _ in range(4):
        c = Conn(rf.port)
        for i in range(50):
            c.send(build_request("GET", "/users/%d" % i))
            r = c.read_response()
            check(r.status == 200 and r.json()["id"] == i, r)
        c.close()
    s1, s2 = b1.stats(), b2.stats()
    conns = s1["connections"] + s2["connections"] - before
    reqs = s1["requests"] + s2["requests"]
    check(reqs >= 200, (s1, s2))
    check(conns <= 8, "backend saw %d connections for 200 requests" % conns)
    rf.stop()


def test_pipelining_in_order():
    rf, _ = stack()
    c = Conn(rf.port)
    c.send(b"".join(build_request("GET", "/users/%d" % i) for i in range(1, 21)))
    for i in range(1, 21):
        r = c.read_response()
        check(r.status == 200 and r.json()["id"] == i, (i, r))
    c.close()
    rf.stop()


def test_http10():
    rf, _ = stack(n=1)
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/1", version="HTTP/1.0", host=None))
    r = c.read_response()
    check(r.status == 200 and r.json()["id"] == 1, r)
    check(c.is_closed(), "HTTP/1.0 without keep-alive must close")
    c.close()
    c = Conn(rf.port)
    for i in (2, 3):
        c.send(build_request("GET", "/users/%d" % i, version="HTTP/1.0",
                             headers={"Connection": "keep-alive"}))
        r = c.read_response()
        check(r.status == 200 and r.json()["id"] == i, r)
        check((r.header("Connection") or "").lower() == "keep-alive", r.headers)
    c.close()
    # a chunked backend response is decoded for an HTTP/1.0 client
    c = Conn(rf.port)
    c.send(build_request("GET", "/chunked/5000", version="HTTP/1.0"))
    r = c.read_response()
    check(r.status == 200 and r.header("Transfer-Encoding") is None, r.headers)
    check(len(r.body) == 5000, len(r.body))
    c.close()
    rf.stop()


def test_head_and_bodiless_statuses():
    rf, _ = stack(n=1)
    c = Conn(rf.port)
    c.send(build_request("HEAD", "/users/7"))
    r = c.read_response(head_request=True)
    check(r.status == 200 and int(r.header("Content-Length")) > 0 and r.body == b"", r)
    for code in (204, 304):
        c.send(build_request("GET", "/status/%d" % code))
        r = c.read_response()
        check(r.status == code and r.body == b"", r)
    c.send(build_request("GET", "/users/8"))
    r = c.read_response()
    check(r.status == 200 and r.json()["id"] == 8, r)
    c.close()
    rf.stop()


def test_connection_close_request():
    rf, _ = stack(n=1)
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/1", headers={"Connection": "close"}))
    r = c.read_response()
    check(r.status == 200 and (r.header("Connection") or "").lower() == "close", r.headers)
    check(c.is_closed())
    c.close()
    rf.stop()


def test_no_route_404():
    rf, _ = stack(n=1, routes=[("/users", "app")])
    c = Conn(rf.port)
    c.send(build_request("GET", "/nothing/here"))
    r = c.read_response()
    check(r.status == 404 and r.json()["code"] == 404, r)
    check(r.header("Content-Type") == "application/json", r.headers)
    c.send(build_request("GET", "/users/3"))
    r = c.read_response()
    check(r.status == 200 and r.json()["id"] == 3, r)
    c.close()
    rf.stop()


def test_expect_100_continue():
    rf, _ = stack(n=1)
    c = Conn(rf.port)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    c.want_interim = True
    r = c.read_response()
    check(r.status == 100, r)
    c.want_interim = False
    c.send(b"hello")
    r = c.read_response()
    check(r.status == 200 and r.json()["bytes"] == 5, r)
    c.close()
    rf.stop()
