"""test_cache.py - the response cache through the real binary: a miss then
hits served without the backend, what a shared cache must not store,
invalidation by unsafe methods, Vary, the host in the key, revalidation
with validators (304), stale-while-revalidate, and the Redis protocol port
over the same store (redis-cli)."""
import re
import shutil
import subprocess
import threading

from harness import (Conn, RawBackend, Ringfront, build_request, check, config,
                     free_port, is_sanitized)

HEADERS = {
    b"/fresh": b"Cache-Control: max-age=60\r\n",
    b"/nostore": b"Cache-Control: no-store\r\n",
    b"/private": b"Cache-Control: private, max-age=60\r\n",
    b"/cookie": b"Cache-Control: max-age=60\r\nSet-Cookie: a=b\r\n",
    b"/vary": b"Cache-Control: max-age=60\r\nVary: Accept-Language\r\n",
    b"/plain": b"",
    b"/sie": b"Cache-Control: max-age=1, stale-if-error=60\r\n",
    b"/expire": b"Cache-Control: max-age=1\r\n",
    b"/etag": b"Cache-Control: max-age=1\r\n",
    b"/lm": b"Cache-Control: max-age=1\r\nLast-Modified: Sun, 01 Nov 2026 00:00:00 GMT\r\n",
    b"/swr": b"Cache-Control: max-age=1, stale-while-revalidate=30\r\n",
}
LAST_MODIFIED = b"Sun, 01 Nov 2026 00:00:00 GMT"


class CountingBackend:
    """Keep-alive raw backend: answers every request with a body naming the
    request number, so a cached copy is recognisable; counts per target."""

    def __init__(self):
        self.count = {}
        self.etags = {}         # path -> current ETag: answers If-None-Match with 304
        self.conditionals = []  # (path, If-None-Match, If-Modified-Since) received
        self.delay = 0.0        # seconds a conditional request waits before its answer
        self.lock = threading.Lock()
        self.raw = RawBackend(self.handler)
        self.addr = self.raw.addr

    def handler(self, bc):
        while True:
            req = bc.read_request()
            if req is None:
                return
            path = req.target.split(b"?")[0]
            with self.lock:
                self.count[path] = self.count.get(path, 0) + 1
                n = self.count[path]
            lang = inm = ims = b""
            for k, v in req.headers:
                if k.lower() == b"accept-language":
                    lang = v
                elif k.lower() == b"if-none-match":
                    inm = v
                elif k.lower() == b"if-modified-since":
                    ims = v
            if inm or ims:
                with self.lock:
                    self.conditionals.append((path, inm, ims))
                import time as _t
                _t.sleep(self.delay)
            etag = self.etags.get(path)
            if (etag and inm == etag) or (not inm and path == b"/lm" and ims == LAST_MODIFIED):
                bc.send(b"HTTP/1.1 304 Not Modified\r\n" +
                        (b"ETag: %s\r\n" % etag if etag else b"") +
                        b"Cache-Control: max-age=60\r\n\r\n")
                continue
            body = b'{"path":"%s","n":%d,"lang":"%s"}' % (path, n, lang)
            extra = HEADERS.get(path, b"Cache-Control: max-age=60\r\n")
            if etag:
                extra += b"ETag: %s\r\n" % etag
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra +
                    b"Content-Length: %d\r\n\r\n" % len(body) + body)


def stack(extra=""):
    b = CountingBackend()
    rport = free_port()
    ini = config([b.addr]) + "\n[cache]\nmemory = 8m\nlisten = 127.0.0.1:%d\n%s" % (rport, extra)
    return Ringfront(ini), b, rport


def get(c, path, headers=None, method="GET"):
    c.send(build_request(method, path, headers=headers, body=b"x" if method == "POST" else None))
    return c.read_response(head_request=(method == "HEAD"))


def test_miss_then_hit():
    rf, b, _ = stack()
    c = Conn(rf.port)
    r1 = get(c, "/fresh")
    check(r1.status == 200 and r1.header("X-Cache-Status") == "MISS", r1)
    for _ in range(5):
        r = get(c, "/fresh")
        check(r.status == 200 and r.header("X-Cache-Status") == "HIT", r)
        check(r.body == r1.body, (r.body, r1.body))
        check(r.header("Age") is not None and r.header("X-Request-Id"), r.headers)
    r = get(c, "/fresh", method="HEAD")
    check(r.status == 200 and r.header("X-Cache-Status") == "HIT" and r.body == b"", r)
    c.close()
    check(b.count[b"/fresh"] == 1, b.count)
    rf.stop()


def test_not_stored():
    rf, b, _ = stack()
    c = Conn(rf.port)
    for path in ("/nostore", "/private", "/cookie", "/plain"):
        for _ in range(3):
            r = get(c, path)
            check(r.status == 200 and r.header("X-Cache-Status") in ("MISS", "BYPASS"), (path, r))
        check(b.count[path.encode()] == 3, (path, b.count))
    # a request with Authorization is not answered from the cache
    get(c, "/fresh")
    r = get(c, "/fresh", headers={"Authorization": "Bearer x"})
    check(r.header("X-Cache-Status") == "BYPASS", r.headers)
    c.close()
    rf.stop()


def test_post_invalidates():
    rf, b, _ = stack()
    c = Conn(rf.port)
    get(c, "/fresh")
    check(get(c, "/fresh").header("X-Cache-Status") == "HIT")
    r = get(c, "/fresh", method="POST")
    check(r.status == 200 and r.header("X-Cache-Status") == "BYPASS", r)
    r = get(c, "/fresh")
    check(r.header("X-Cache-Status") == "MISS", r.headers)
    c.close()
    rf.stop()


def test_vary_and_host_in_key():
    rf, b, _ = stack()
    c = Conn(rf.port)
    en = get(c, "/vary", headers={"Accept-Language": "en"})
    de = get(c, "/vary", headers={"Accept-Language": "de"})
    check(b'"lang":"en"' in en.body and b'"lang":"de"' in de.body, (en.body, de.body))
    r = get(c, "/vary", headers={"Accept-Language": "de"})
    check(r.header("X-Cache-Status") == "HIT" and b'"lang":"de"' in r.body, r)
    r = get(c, "/vary", headers={"Accept-Language": "en"})
    check(r.header("X-Cache-Status") == "HIT" and b'"lang":"en"' in r.body, r)
    # another virtual host is another key
    c.send(build_request("GET", "/fresh", host="a.example"))
    c.read_response()
    c.send(build_request("GET", "/fresh", host="b.example"))
    r = c.read_response()
    check(r.header("X-Cache-Status") == "MISS", r.headers)
    c.close()
    rf.stop()


def redis(port, *args):
    p = subprocess.run(["redis-cli", "-p", str(port)] + list(args),
                       capture_output=True, text=True, timeout=10)
    return p.stdout.strip()


def test_redis_port():
    if not shutil.which("redis-cli"):
        print("note: redis-cli missing; RESP port checked by unit tests only")
        return
    rf, b, rport = stack()
    check(redis(rport, "PING") == "PONG")
    check(redis(rport, "SET", "user:1", "alice") == "OK")
    check(redis(rport, "GET", "user:1") == "alice")
    check(redis(rport, "INCR", "n") == "1" and redis(rport, "INCR", "n") == "2")
    check(redis(rport, "DEL", "user:1") == "1")
    check(redis(rport, "GET", "user:1") == "")
    check(redis(rport, "SET", "t", "v", "EX", "100") == "OK")
    check(0 < int(redis(rport, "TTL", "t")) <= 100)
    # an HTTP entry is visible under its cache key, and DEL purges it
    c = Conn(rf.port)
    get(c, "/fresh")
    keys = int(redis(rport, "DBSIZE"))
    check(keys >= 3, keys)
    key = "http://localhost:80/fresh"
    check(redis(rport, "EXISTS", key) == "1", redis(rport, "EXISTS", key))
    check(redis(rport, "DEL", key) == "1")
    r = get(c, "/fresh")
    check(r.header("X-Cache-Status") == "MISS", r.headers)
    c.close()
    info = redis(rport, "INFO")
    check("keyspace_hits" in info and "used_memory" in info, info[:200])
    # counted over every connection, as Redis does, not this one's alone
    done = int(re.search(r"total_commands_processed:(\d+)", info).group(1))
    check(done >= 5, info)
    rf.stop()


def test_concurrent_misses_coalesce():
    b = CountingBackend()
    slow_handler = b.handler

    def slow(bc):
        import time as _t
        _t.sleep(0.3)           # the first fetch takes a while
        slow_handler(bc)

    b.raw.handler = slow
    ini = config([b.addr], workers=2) + "\n[cache]\nmemory = 8m\n"
    rf = Ringfront(ini)
    results = []
    lock = threading.Lock()

    def client():
        c = Conn(rf.port)
        r = get(c, "/fresh")
        with lock:
            results.append((r.status, r.body))
        c.close()

    ts = [threading.Thread(target=client) for _ in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    check(len(results) == 50 and all(s == 200 for s, _ in results), results[:3])
    check(len({body for _, body in results}) == 1, "clients got different copies: %s" % sorted({body for _, body in results})[:4])
    check(b.count.get(b"/fresh") == 1, "backend fetched %s times" % b.count.get(b"/fresh"))
    rf.stop()


def test_stale_if_error_when_backend_fails():
    rf, b, _ = stack()
    c = Conn(rf.port)
    first = get(c, "/sie")
    get(c, "/expire")
    check(first.header("X-Cache-Status") == "MISS", first.headers)
    c.close()
    import time as _t
    _t.sleep(1.3)               # both are stale now
    b.raw.close()               # and the backend is gone
    c = Conn(rf.port)
    r = get(c, "/sie")
    check(r.status == 200 and r.header("X-Cache-Status") == "STALE", r)
    check(r.body == first.body, (r.body, first.body))
    # without stale-if-error the failure shows
    r = get(c, "/expire")
    check(r.status in (502, 503), r)
    c.close()
    rf.stop()


def test_admin_purge():
    import json as _json
    b = CountingBackend()
    aport = free_port()
    rf = Ringfront(config([b.addr]) + "\n[cache]\nmemory = 8m\n[admin]\nlisten = 127.0.0.1:%d\n" % aport)
    c = Conn(rf.port)
    for path in ("/fresh", "/a/1", "/a/2"):
        get(c, path)
        check(get(c, path).header("X-Cache-Status") == "HIT")

    def purge(body):
        ac = Conn(aport)
        ac.send(build_request("POST", "/cache/purge", body=_json.dumps(body)))
        r = ac.read_response()
        ac.close()
        return r

    r = purge({"key": "http://localhost:80/fresh"})
    check(r.status == 200 and r.json() == {"purged": "key"}, r)
    import time as _t
    _t.sleep(0.1)               # the owning worker applies it
    check(get(c, "/fresh").header("X-Cache-Status") == "MISS")
    check(get(c, "/a/1").header("X-Cache-Status") == "HIT")
    check(purge({"prefix": "http://localhost:80/a/"}).status == 200)
    _t.sleep(0.1)
    check(get(c, "/a/1").header("X-Cache-Status") == "MISS")
    check(get(c, "/a/2").header("X-Cache-Status") == "MISS")
    r = purge({"nothing": 1})
    check(r.status == 400 and r.json()["code"] == 400, r)
    c.close()
    rf.stop()


def test_revalidation_with_304():
    import time as _t
    rf, b, _ = stack()
    b.etags[b"/etag"] = b'"v1"'
    c = Conn(rf.port)
    first = get(c, "/etag")
    check(first.header("X-Cache-Status") == "MISS" and first.header("ETag") == '"v1"', first)
    _t.sleep(1.3)               # stale now: the next use asks the backend with its ETag
    r = get(c, "/etag")
    check(r.status == 200 and r.header("X-Cache-Status") == "REVALIDATED", r)
    check(r.body == first.body, (r.body, first.body))
    check(r.header("Cache-Control") == "max-age=60", "304 fields not merged: %s" % r.headers)
    check(b.conditionals == [(b"/etag", b'"v1"', b"")], b.conditionals)
    # the 304 made it fresh for another minute
    r = get(c, "/etag", method="HEAD")
    check(r.status == 200 and r.header("X-Cache-Status") == "HIT" and r.body == b"", r)
    check(r.header("Content-Length") == str(len(first.body)), r.headers)
    # Last-Modified works as the validator too
    first = get(c, "/lm")
    _t.sleep(1.3)
    r = get(c, "/lm")
    check(r.header("X-Cache-Status") == "REVALIDATED" and r.body == first.body, r)
    check((b"/lm", b"", LAST_MODIFIED) in b.conditionals, b.conditionals)
    c.close()
    check(b.count == {b"/etag": 2, b"/lm": 2}, b.count)
    rf.stop()


def test_revalidation_finds_a_new_version():
    import time as _t
    rf, b, _ = stack()
    b.etags[b"/etag"] = b'"v1"'
    c = Conn(rf.port)
    first = get(c, "/etag")
    b.etags[b"/etag"] = b'"v2"'
    _t.sleep(1.3)
    r = get(c, "/etag")         # the backend answers 200 with the new version
    check(r.header("X-Cache-Status") == "MISS" and r.header("ETag") == '"v2"', r)
    check(r.body != first.body, r.body)
    check(get(c, "/etag").body == r.body, "new version not stored")
    c.close()
    rf.stop()


def test_client_validators_answered_from_cache():
    import time as _t
    rf, b, _ = stack()
    b.etags[b"/fresh"] = b'"v1"'
    c = Conn(rf.port)
    full = get(c, "/fresh")
    for inm in ('"v1"', 'W/"v1"', '"x", "v1"', "*"):
        r = get(c, "/fresh", headers={"If-None-Match": inm})
        check(r.status == 304 and r.body == b"", (inm, r))
        check(r.header("ETag") == '"v1"' and r.header("X-Cache-Status") == "HIT", r.headers)
        check(r.header("Content-Length") is None and r.header("Content-Type") is None, r.headers)
    r = get(c, "/fresh", headers={"If-None-Match": '"v0"'})
    check(r.status == 200 and r.body == full.body, r)
    # If-Modified-Since: only when there is no If-None-Match
    r = get(c, "/fresh", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    check(r.status == 304, r)
    r = get(c, "/fresh", headers={"If-Modified-Since": "Fri, 01 Jan 1999 00:00:00 GMT"})
    check(r.status == 200 and r.body == full.body, r)
    # preconditions that may fail go to the backend
    r = get(c, "/fresh", headers={"If-Match": '"v1"'})
    check(r.status == 200 and r.header("X-Cache-Status") == "BYPASS", r)
    # a stale copy: ringfront revalidates with its own validator, then
    # answers the client's
    first = get(c, "/etag")
    b.etags[b"/etag"] = b'"e1"'
    _t.sleep(1.3)
    get(c, "/etag")             # 200 with ETag "e1" replaces the copy without one
    _t.sleep(1.3)
    r = get(c, "/etag", headers={"If-None-Match": '"e1"'})
    check(r.status == 304 and r.header("X-Cache-Status") == "REVALIDATED", r)
    check(b.conditionals[-1] == (b"/etag", b'"e1"', b""), b.conditionals)
    c.close()
    check(b.count[b"/fresh"] == 2 and first.status == 200, b.count)
    rf.stop()


def test_stale_while_revalidate():
    import time as _t
    rf, b, _ = stack()
    b.etags[b"/swr"] = b'"s1"'
    c = Conn(rf.port)
    first = get(c, "/swr")
    c.close()
    _t.sleep(1.3)               # stale, inside stale-while-revalidate=30
    b.delay = 1.0               # the revalidation takes a second
    lead = {}

    def refresh():
        lc = Conn(rf.port)
        lead["r"] = get(lc, "/swr")
        lc.close()

    t = threading.Thread(target=refresh)
    t.start()
    _t.sleep(0.3)
    c = Conn(rf.port)
    t0 = _t.time()
    r = get(c, "/swr")          # meanwhile: the stale copy, at once
    took = _t.time() - t0
    check(r.status == 200 and r.header("X-Cache-Status") == "STALE", r)
    check(r.body == first.body and took < 0.6, (took, r))
    t.join(10)
    check(lead["r"].header("X-Cache-Status") == "REVALIDATED", lead["r"])
    r = get(c, "/swr")
    check(r.header("X-Cache-Status") == "HIT", r)
    c.close()
    check(b.count[b"/swr"] == 2, b.count)
    rf.stop()


def test_demo_app_reads_through_and_asks_the_limiter():
    """The seeds' application: the demo backend asks ringfront's limiter
    (line protocol) before /users/<id> and reads through ringfront's Redis
    port, with its own X-Cache-Status; ringfront's replaces it on a route
    ringfront caches."""
    from harness import Backend
    bport, rlport, cport = free_port(), free_port(), free_port()
    ini = config(["127.0.0.1:%d" % bport], server="shutdown_timeout = 60s",
                 routes=[("/", "app"), ("/users/", "app cache=off ratelimit=off"),
                         ("/users/9", "app ratelimit=off")])
    ini += ("\n[ratelimit]\nrate = 4/m\nburst = 4\nlisten = 127.0.0.1:%d\n"
            "[cache]\nmemory = 8m\nlisten = 127.0.0.1:%d\n" % (rlport, cport))
    rf = Ringfront(ini)
    Backend("--ratelimit", "127.0.0.1:%d" % rlport, "--cache", "127.0.0.1:%d" % cport,
            port=bport)
    c = Conn(rf.port)
    r1 = get(c, "/users/7")
    check(r1.status == 200 and r1.header_all("X-Cache-Status") == ["MISS"], r1)
    r2 = get(c, "/users/7")
    check(r2.status == 200 and r2.header_all("X-Cache-Status") == ["HIT"], r2)
    check(r2.body == r1.body, (r1.body, r2.body))
    if shutil.which("redis-cli"):
        check(redis(cport, "GET", "user:7").encode() == r1.body, redis(cport, "GET", "user:7"))
        check(redis(cport, "DEL", "user:7") == "1")
        check(get(c, "/users/7").header("X-Cache-Status") == "MISS")
    else:
        get(c, "/users/8")
    # ringfront caches /users/9 itself: one X-Cache-Status, ringfront's
    r = get(c, "/users/9")
    check(r.status == 200 and r.header_all("X-Cache-Status") == ["MISS"], r)
    # four admissions spent on this address: the application answers 429
    r = get(c, "/users/7")
    check(r.status == 429 and r.json() == {"error": "rate limited"}, r)
    c.close()
    # the application's idle connections to the limiter and the cache port
    # do not hold a graceful stop for shutdown_timeout
    import time as _t
    t0 = _t.time()
    rf.stop()
    check(_t.time() - t0 < 30, "stop took %.1f s" % (_t.time() - t0))


def test_rss_stays_within_the_memory_bound_under_churn():
    """64 MB of distinct values through an 8 MB cache (Redis port, two
    workers): eviction keeps the process's resident memory near the bound
    instead of growing with what was written."""
    import os
    import socket
    import sys
    import time as _t
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    from procstat import rss_kb
    b = CountingBackend()
    rport = free_port()
    # few receive buffers: their pages, touched as traffic flows, are not
    # what this test measures
    rf = Ringfront(config([b.addr], workers=2, server="recv_buffers = 64") +
                   "\n[cache]\nmemory = 8m\nlisten = 127.0.0.1:%d\n" % rport)
    base = rss_kb(rf.pid)
    value = b"v" * 16384
    s = socket.create_connection(("127.0.0.1", rport))
    s.settimeout(10)
    peak = 0
    for batch in range(64):                 # 64 x 64 x 16 KB = 64 MB
        cmds = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" %
                        (len(k), k, len(value), value)
                        for k in (b"churn:%d:%d" % (batch, i) for i in range(64)))
        s.sendall(cmds)
        got = b""
        while got.count(b"+OK\r\n") < 64:
            chunk = s.recv(65536)
            check(chunk, "connection closed after %r" % got[-100:])
            got += chunk
        peak = max(peak, rss_kb(rf.pid))
    s.close()
    _t.sleep(0.2)
    info = redis(rport, "INFO") if shutil.which("redis-cli") else ""
    if info:
        # what the index holds stays within the bound; removed entries wait
        # out readers' grace period on top of it for a moment
        held = int(re.search(r"used_memory_index:(\d+)", info).group(1))
        check(held <= 8 << 20, "index holds %d bytes, over the 8 MB bound" % held)
    # the bound, plus receive buffers, session buffers and allocator slack
    # (sanitizer builds keep freed memory in quarantine: no RSS claim there)
    if not is_sanitized(rf.pid):
        check(peak - base <= 16 * 1024, "RSS grew by %d kB (base %d kB)" % (peak - base, base))
    rf.stop()
