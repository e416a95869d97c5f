"""test_faults.py - backends that fail while traffic flows: killed and
restarted under load for 10 rounds, hanging, resetting mid-response,
answering garbage, and health endpoints too slow to answer. Every client
gets a well-formed response (200 through retries where allowed, otherwise
502/503/504, or a closed connection once a response was under way),
ringfront never crashes, and its descriptor count and RSS come back to
where they started (no leaks).

Load comes from tests/tools/loadgen.py, which parses every response
strictly and counts failures by class (connect, closed, malformed,
timeout)."""
import os
import struct
import socket
import sys
import threading
import time

from harness import (Backend, Conn, RawBackend, Ringfront, build_request, check,
                     config, is_sanitized, proc_rss_kb, request, wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from loadgen import Load  # noqa: E402
from procstat import fd_census  # noqa: E402

PROXY_ERRORS = (502, 503, 504)
# passive ejection and the circuit breaker would turn repeated faults of a
# lone server into 503s; these tests look at each fault's own answer
NO_EJECT = "eject_after = 0\ncircuit_failures = 0\n"


def census_settled(rf, base, max_backend, timeout=3.0):
    """Wait until ringfront's descriptors are back to <base> (a census taken
    after a warm-up): the same non-socket descriptors and listeners, no
    client connection (the clients are gone), no dead socket (a connection
    that ended but was never closed), at most <max_backend> pooled backend
    connections. Returns the last census; fails the test with it."""
    def ok():
        c = fd_census(rf.pid, [rf.port])
        return (c if c["other"] <= base["other"] and c["listen"] == base["listen"] and
                c["client"] == 0 and c["dead"] == 0 and c["backend"] <= max_backend and
                c["socket_other"] <= base["socket_other"] else None)
    if wait_until(ok, timeout, 0.05):
        return fd_census(rf.pid, [rf.port])
    c = fd_census(rf.pid, [rf.port])
    check(False, "descriptors did not come back: now %r, after warm-up %r (at most %d backend)"
          % (c, base, max_backend))
    return c


def rss_tolerance_kb(pid, base):
    # ASan keeps freed memory in a quarantine (up to 256 MB by default), so
    # its RSS only tells a leak apart at a much coarser grain
    if is_sanitized(pid):
        return 64 * 1024
    return max(4096, base // 10)


def check_load(res, allowed=(200,) + PROXY_ERRORS, min_ok=1, what="load"):
    bad = {k: v for k, v in res["status"].items() if k not in allowed}
    errs = {k: v for k, v in res["errors"].items() if v}
    check(not bad and not errs, "%s: unexpected statuses %r / failures %r, e.g. %r (all: %r)"
          % (what, bad, errs, res["samples"][:3], res["status"]))
    check(res["status"].get(200, 0) >= min_ok, "%s: too few 200s: %r" % (what, res))


def kill9(b):
    b.signal(9)
    b.stop()


def test_backend_kill_restart_10_rounds():
    backends = [Backend(), Backend()]
    workers, keepalive = 2, 4
    # 128 receive buffers: RSS then measures what the rounds leave behind,
    # not receive-buffer pages touched for the first time (see README)
    rf = Ringfront(config([b.addr for b in backends], workers=workers,
                          server="recv_buffers = 128",
                          upstream="max_retries = 2\nconnect_timeout = 1s\n"
                                   "response_timeout = 5s\nkeepalive = %d\n"
                                   # ejection and the breaker stay on, with
                                   # short sentences so recovery fits the test
                                   "eject_time = 1s\ncircuit_open_time = 1s" % keepalive))
    paths = ["/users/1", "/bytes/3000", "/chunked/5000", "/users/2"]
    pool_max = keepalive * len(backends) * workers
    # warm-up: pools, buffers and the allocator reach their working size
    check_load(run_load(rf.port, 8, paths, 1.0), allowed=(200,), what="warm-up")
    base = census_settled(rf, fd_census(rf.pid, [rf.port]), pool_max)
    rss0 = proc_rss_kb(rf.pid)

    load = Load(rf.port, 8, paths).start()
    t0 = time.time()
    for rnd in range(10):
        i = rnd % 2
        port = backends[i].port
        kill9(backends[i])
        time.sleep(0.25)
        check(rf.poll() is None, "ringfront died in round %d" % rnd)
        backends[i] = Backend(port=port)
        time.sleep(0.25)
    res = load.stop()
    dt = time.time() - t0
    check(rf.poll() is None, "ringfront died:\n" + rf.output()[-2000:])
    check_load(res, min_ok=100, what="10 kill/restart rounds")

    # both servers are back: once the breakers close, everything is 200 again
    check(wait_until(lambda: all(request(rf.port, "GET", "/users/1").status == 200
                                 for _ in range(10)), 6.0, 0.2),
          "no recovery after the rounds")
    # the same warm load again, then the process is back where it started
    check_load(run_load(rf.port, 8, paths, 1.0), allowed=(200,), what="after the rounds")
    end = census_settled(rf, base, pool_max)
    rss1 = proc_rss_kb(rf.pid)
    tol = rss_tolerance_kb(rf.pid, rss0)
    check(rss1 <= rss0 + tol, "RSS %d kB after the rounds, %d kB before (+%d allowed)"
          % (rss1, rss0, tol))
    print("    kill/restart: %d requests in %.1fs %r; fds %d -> %d; RSS %d -> %d kB"
          % (res["requests"], dt, res["status"], base["total"], end["total"], rss0, rss1))
    rf.stop()


def run_load(port, threads, paths, seconds):
    load = Load(port, threads, paths).start()
    time.sleep(seconds)
    return load.stop()


def hang_handler(bc):
    """Read requests and never answer."""
    bc.drain(timeout=30)


def test_hanging_backend_504_no_leak():
    hung = RawBackend(hang_handler)
    rf = Ringfront(config([hung.addr], upstream=NO_EJECT + "response_timeout = 500ms\nmax_retries = 0"))
    base = fd_census(rf.pid, [rf.port])
    results = []
    lock = threading.Lock()

    def one(i):
        t = time.time()
        try:
            r = request(rf.port, "GET", "/hang/%d" % i, timeout=5)
            st = r.status
        except Exception as e:  # noqa: BLE001
            st = repr(e)
        with lock:
            results.append((st, time.time() - t))

    for _round in range(3):
        ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
    check(len(results) == 60, results)
    check(all(st == 504 for st, _ in results),
          "not all 504: %r" % [r for r in results if r[0] != 504][:10])
    slowest = max(dt for _, dt in results)
    check(slowest < 2.5, "a 504 took %.2fs with response_timeout 500ms" % slowest)
    print("    hanging backend: 60 x 504 in %.2f-%.2fs" % (min(dt for _, dt in results), slowest))
    # a timed-out backend connection cannot be reused: none may stay open
    census_settled(rf, base, 0)
    check(rf.poll() is None)
    rf.stop()
    hung.close()


GARBAGE = [
    # (name, bytes the backend answers with, then closes)
    ("not_http", b"garbage garbage garbage\r\n\r\n"),
    ("binary", bytes(range(256)) * 4),
    ("bad_status", b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status_999", b"HTTP/1.1 999 What\r\nContent-Length: 0\r\n\r\n"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("cl_and_te", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
    ("bad_cl", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("http2", b"HTTP/2 200\r\n\r\n"),
    ("empty_close", b""),
    ("huge_head", b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 100000 + b"\r\n\r\n"),
]


def garbage_handler(bc):
    req = bc.read_head(timeout=10)
    if req is None:
        return
    name = req.split(b" ")[1].decode().strip("/")
    payload = dict(GARBAGE).get(name, b"")
    try:
        bc.send(payload)
    except OSError:
        pass
    bc.close()


def test_garbage_answers_are_502():
    raw = RawBackend(garbage_handler)
    rf = Ringfront(config([raw.addr], upstream=NO_EJECT + "max_retries = 0"))
    base = fd_census(rf.pid, [rf.port])
    for _round in range(3):
        for name, _ in GARBAGE:
            r = request(rf.port, "GET", "/" + name, timeout=10)
            check(r.status == 502, "%s: %r" % (name, r))
            check(r.json()["code"] == 502, r.body)
    census_settled(rf, base, 0)
    check(rf.poll() is None)
    rf.stop()
    raw.close()


def reset_handler(bc):
    """/before: RST before any byte; /mid: head and part of the body, then RST."""
    head = bc.read_head(timeout=10)
    if head is None:
        return
    if b" /mid" in head:
        bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"m" * 30000)
        time.sleep(0.05)
    bc.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    bc.close()


def test_reset_mid_response():
    raw = RawBackend(reset_handler)
    good = Backend()
    rf = Ringfront(config([raw.addr], upstream=NO_EJECT + "max_retries = 0",
                          routes=[("/users", "good"), ("/", "app")]) +
                   "[upstream good]\nservers = %s\nhealth_path =\nkeepalive = 1\n" % good.addr)
    check(request(rf.port, "GET", "/users/0").status == 200)
    base = fd_census(rf.pid, [rf.port])
    for i in range(20):
        # reset before the answer: a clean 502
        r = request(rf.port, "GET", "/before", timeout=10)
        check(r.status == 502, r)
        # reset after the head went out: the client sees the connection
        # end short of Content-Length, never a made-up second response
        c = Conn(rf.port, timeout=10)
        c.send(build_request("GET", "/mid"))
        got = c.read_until_close()
        c.close()
        check(got.startswith(b"HTTP/1.1 200"), got[:100])
        check(got.count(b"HTTP/1.1") == 1, "two responses on one stream")
        _, _, body = got.partition(b"\r\n\r\n")
        check(len(body) < 100000, "a reset body came out whole")
        # and the other route is unaffected
        check(request(rf.port, "GET", "/users/%d" % i).status == 200, "other route")
    census_settled(rf, base, 1)
    check(rf.poll() is None)
    rf.stop()
    raw.close()


def slow_health_handler(bc):
    """Answers requests at once, /health only after 3 s."""
    while True:
        head = bc.read_head(timeout=30)
        if head is None:
            return
        if b" /health " in head:
            time.sleep(3)
            body = b'{"status":"ok"}'
        else:
            body = b"slowhealth"
        try:
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            return


def test_slow_health_endpoint_marks_down_without_client_errors():
    slow = RawBackend(slow_health_handler)
    good = Backend()
    ini = config([slow.addr, good.addr],
                 upstream="health_path = /health\nhealth_interval = 200ms\n"
                          "health_timeout = 200ms\nfall = 2\nrise = 2\nkeepalive = 2")
    ini = ini.replace("health_path =\n", "")
    rf = Ringfront(ini)
    load = Load(rf.port, 4, ["/users/1"]).start()
    time.sleep(1.5)             # checks time out: the slow server goes down
    res = load.stop()
    check_load(res, allowed=(200,), what="slow health")
    # once down, everything goes to the good server
    c = Conn(rf.port)
    by = {}
    for _ in range(20):
        c.send(build_request("GET", "/users/1"))
        r = c.read_response()
        k = r.header("X-Handled-By") or r.body.decode(errors="replace")
        by[k] = by.get(k, 0) + 1
    c.close()
    check(by == {"app-server-%d" % good.port: 20},
          "traffic still reaches the slow-health server: %r" % by)
    # checks keep timing out every 200 ms: their sockets must not pile up
    time.sleep(0.3)
    mid = fd_census(rf.pid, [rf.port])
    time.sleep(2.0)             # ~10 more timed-out checks
    end = fd_census(rf.pid, [rf.port])
    check(end["total"] <= mid["total"] + 1 and end["dead"] == 0,
          "descriptors grow while health checks time out: %r -> %r" % (mid, end))
    rf.stop()
    slow.close()
