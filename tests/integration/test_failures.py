"""test_failures.py - what goes wrong on either side: malformed and
smuggling requests, size limits, backends that are down or slow, slow
clients, connection limits, graceful shutdown and configuration errors."""
import json
import signal
import socket
import subprocess
import threading
import time

from harness import (RINGFRONT, Backend, Conn, RawBackend, Ringfront, build_request,
                     check, config, free_port, raw_exchange, request)

MALFORMED = [
    # (name, raw request, expected status)
    ("cl_and_te", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("differing_cl", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
    ("te_chunked_identity", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te_space_colon", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_xchunked", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("obs_fold", b"GET /users/1 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("bare_lf", b"GET /users/1 HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("bare_cr", b"GET /users/1 HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", 400),
    ("nul_in_field", b"GET /users/1 HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("no_host", b"GET /users/1 HTTP/1.1\r\n\r\n", 400),
    ("two_hosts", b"GET /users/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad_version", b"GET /users/1 HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http09", b"GET /users/1\r\n\r\n", 400),
    ("chunk_overflow", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
    ("bad_token", b"GET /users/1 HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400),
]


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].split(b" ")
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def test_malformed_requests_400_and_close():
    b = Backend()
    rf = Ringfront(config([b.addr]))
    before = b.stats()["requests"]
    for name, raw, want in MALFORMED:
        # a valid request pipelined after the bad one must not be forwarded
        out = raw_exchange(rf.port, raw + build_request("GET", "/users/99"))
        check(status_of(out) == want, "%s: got %r" % (name, out[:120]))
        check(b'"code":%d' % want in out, "%s: no JSON body: %r" % (name, out))
        check(b"<timeout>" not in out, "%s: connection not closed" % name)
        check(out.count(b"HTTP/1.1") == 1, "%s: more than one response: %r" % (name, out))
    # the chunk-size overflow is detected while relaying, so the backend
    # may have seen the head; every other vector must not reach it
    check(b.stats()["requests"] - before <= 1, "backend saw bad requests")
    rf.stop()


def test_size_limits():
    b = Backend()
    rf = Ringfront(config([b.addr], server="max_header_size = 2k\nmax_uri_size = 512\nmax_body_size = 1k"))
    out = raw_exchange(rf.port, build_request("GET", "/users/1", headers={"X-Big": "a" * 3000}))
    check(status_of(out) == 431, out[:100])
    out = raw_exchange(rf.port, build_request("GET", "/" + "u" * 600))
    check(status_of(out) == 414, out[:100])
    out = raw_exchange(rf.port, build_request("POST", "/echo", body=b"x" * 2000))
    check(status_of(out) == 413 and b'"code":413' in out, out[:100])
    r = request(rf.port, "POST", "/echo", body=b"x" * 1000)
    check(r.status == 200, r)
    rf.stop()


def test_backend_down_retries_and_moves():
    good = Backend()
    dead_port = free_port()         # nothing listens here
    rf = Ringfront(config(["127.0.0.1:%d" % dead_port, good.addr]))
    for i in range(10):
        r = request(rf.port, "GET", "/users/%d" % i)
        check(r.status == 200 and r.header("X-Handled-By") == "app-server-%d" % good.port, r)
    rf.stop()
    # every server down: a quick JSON error, never a hang
    rf = Ringfront(config(["127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()]))
    t0 = time.time()
    r = request(rf.port, "GET", "/users/1")
    check(r.status in (502, 503) and r.json()["code"] == r.status, r)
    check(time.time() - t0 < 3, "took too long")
    rf.stop()


def test_backend_timeout_504():
    b = Backend()
    rf = Ringfront(config([b.addr], upstream="response_timeout = 500ms"))
    t0 = time.time()
    r = request(rf.port, "GET", "/slow/3000")
    check(r.status == 504 and r.json()["code"] == 504, r)
    check(time.time() - t0 < 2.5, "timeout took %.1fs" % (time.time() - t0))
    r = request(rf.port, "GET", "/slow/10")
    check(r.status == 200, r)
    rf.stop()


def test_slow_client_header_timeout():
    b = Backend()
    rf = Ringfront(config([b.addr], server="header_timeout = 1s"))
    c = Conn(rf.port)
    c.send(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    out = c.read_until_close()
    dt = time.time() - t0
    check(status_of(out) == 408, out)
    check(0.8 < dt < 3.0, "closed after %.2fs" % dt)
    # an idle connection that never sends anything is closed silently
    c = Conn(rf.port)
    check(c.is_closed(wait=3.0), "idle connection not closed")
    rf.stop()


def test_max_connections():
    b = Backend()
    rf = Ringfront(config([b.addr], server="max_connections = 5"))
    # the harness's readiness probe counts until ringfront sees it close
    held = []
    deadline = time.time() + 5
    while len(held) < 5 and time.time() < deadline:
        c = Conn(rf.port)
        c.send(build_request("GET", "/users/1"))
        try:
            check(c.read_response().status == 200)
            held.append(c)
        except EOFError:
            c.close()
            time.sleep(0.1)
    check(len(held) == 5, "only %d connections served" % len(held))
    extra = Conn(rf.port)
    extra.send(build_request("GET", "/users/1"))
    check(extra.is_closed(wait=3.0), "connection beyond max_connections was served")
    for c in held:
        c.close()
    time.sleep(0.3)
    r = request(rf.port, "GET", "/users/2")
    check(r.status == 200, r)
    rf.stop()


def test_graceful_shutdown_finishes_inflight():
    b = Backend()
    rf = Ringfront(config([b.addr], server="shutdown_timeout = 5s"))
    result = {}

    def slow():
        try:
            result["r"] = request(rf.port, "GET", "/slow/1200")
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    rf.signal(signal.SIGTERM)
    time.sleep(0.2)
    # no new connections are accepted while stopping
    refused = False
    try:
        socket.create_connection(("127.0.0.1", rf.port), timeout=1).close()
    except OSError:
        refused = True
    t.join(10)
    check("r" in result and result["r"].status == 200, result)
    check(refused, "listener still accepting during shutdown")
    rc = rf.p.wait(10)
    check(rc == 0, "exit code %s" % rc)
    rf.stop()


def test_config_errors_have_line_numbers(tmp="/tmp"):
    path = "%s/rf-bad-%d.ini" % (tmp, free_port())
    with open(path, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:1\nworkerz = 2\n[upstream app]\nservers = 127.0.0.1:2\n")
    p = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True)
    check(p.returncode != 0, p)
    check(("%s:3:" % path) in p.stderr and "workerz" in p.stderr, p.stderr)
    with open(path, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:1\n[upstream app]\nservers = 127.0.0.1:2\n")
    p = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True)
    check(p.returncode == 0, p)
    p = subprocess.run([RINGFRONT, "-t", "-c", "conf/default.ini"], capture_output=True, text=True)
    check(p.returncode == 0, p)


def test_two_workers_share_load():
    b1, b2 = Backend(), Backend()
    rf = Ringfront(config([b1.addr, b2.addr], workers=2))
    errors = []

    def client(n):
        try:
            c = Conn(rf.port)
            for i in range(n):
                c.send(build_request("GET", "/users/%d" % i))
                r = c.read_response()
                if r.status != 200:
                    errors.append(r)
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=client, args=(100,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check(not errors, errors[:3])
    total = b1.stats()["requests"] + b2.stats()["requests"]
    check(total >= 800, total)
    rf.stop()


def test_json_error_bodies_are_json():
    rf = Ringfront(config(["127.0.0.1:%d" % free_port()]))
    r = request(rf.port, "GET", "/x")
    body = json.loads(r.body)
    check(set(body) == {"code", "message"} and body["code"] == r.status, body)
    rf.stop()


# ---- a fresh backend connection that dies before answering ----

def close_unanswered(reset):
    """RawBackend handler: read one request, then close (or reset) without
    a response byte."""
    def handler(bc):
        bc.read_request(timeout=10)
        if reset:
            bc.reset()
        else:
            bc.close()
    return handler


def test_fresh_connection_dies_idempotent_retried_elsewhere():
    """HAProxy's retry-on conn-failure,empty-response: a GET whose fresh
    backend connection is closed or reset before any response byte goes to
    another server; a POST (its body sent once) gets 502."""
    quiet = "keepalive = 0\neject_after = 0\ncircuit_failures = 0"
    for reset in (False, True):
        bad, good = RawBackend(close_unanswered(reset)), Backend()
        rf = Ringfront(config([bad.addr, good.addr], upstream=quiet))
        for i in range(10):
            r = request(rf.port, "GET", "/users/%d" % i)
            check(r.status == 200 and r.header("X-Handled-By") == "app-server-%d" % good.port,
                  "reset=%s: %r" % (reset, r))
        check(len(bad.conns) >= 4, "the closing server saw %d requests" % len(bad.conns))
        n = len(bad.conns)
        codes = [request(rf.port, "POST", "/echo", body=b"once").status for _ in range(10)]
        check(codes.count(502) == len(bad.conns) - n and codes.count(200) + codes.count(502) == 10,
              "reset=%s: POST codes %s, %d reached the bad server" % (reset, codes,
                                                                      len(bad.conns) - n))
        rf.stop()
        bad.close()
        good.stop()
    # max_retries = 0: no second server for the GET either
    bad, good = RawBackend(close_unanswered(False)), Backend()
    rf = Ringfront(config([bad.addr, good.addr], upstream=quiet + "\nmax_retries = 0"))
    codes = [request(rf.port, "GET", "/users/1").status for _ in range(6)]
    check(sorted(set(codes)) == [200, 502], codes)
    rf.stop()


def test_put_with_body_is_not_replayed_on_a_fresh_link():
    """A pooled link that dies after a PUT's body went out must not send
    the head again without its body: the client gets 502, quickly."""
    def answer_then_close(bc):
        req = bc.read_request(timeout=10)
        body = b"ok:" + req.body
        bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        bc.read_request(timeout=10)
        bc.close()

    b = RawBackend(answer_then_close)
    rf = Ringfront(config([b.addr], upstream="eject_after = 0\ncircuit_failures = 0"))
    c = Conn(rf.port, timeout=5)
    c.send(build_request("PUT", "/x", body=b"one"))
    r = c.read_response()
    check(r.status == 200 and r.body == b"ok:one", r)
    t0 = time.time()
    c.send(build_request("PUT", "/x", body=b"two"))
    r = c.read_response()
    check(r.status == 502 and time.time() - t0 < 2, (r, time.time() - t0))
    c.close()
    # a GET on the same kind of link is sent again on a fresh one
    c = Conn(rf.port, timeout=5)
    c.send(build_request("GET", "/a"))
    check(c.read_response().status == 200)
    c.send(build_request("GET", "/b"))
    r = c.read_response()
    check(r.status == 200 and r.body == b"ok:", r)
    c.close()
    rf.stop()


def test_retry_on_answers_and_response_timeout():
    """retry_on 503 429 response-timeout: such an answer (or silence) from
    one server is dropped unseen and a GET goes to the other; a POST gets
    what its server said; without those conditions the client sees them."""
    def answer(status):
        def handler(bc):
            while bc.read_request(timeout=10) is not None:
                body = b'{"from":"bad"}'
                bc.send(b"HTTP/1.1 %d No\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        return handler

    def silent(bc):
        bc.read_request(timeout=10)
        time.sleep(3)

    quiet = "eject_after = 0\ncircuit_failures = 0\nretry_budget = 100"
    for status in (503, 429):
        bad, good = RawBackend(answer(status)), Backend()
        rf = Ringfront(config([bad.addr, good.addr],
                              upstream=quiet + "\nretry_on = connect-failure %d" % status))
        for i in range(8):
            r = request(rf.port, "GET", "/users/%d" % i)
            check(r.status == 200 and r.header("X-Handled-By") == "app-server-%d" % good.port,
                  "%d: %r" % (status, r))
        codes = {request(rf.port, "POST", "/echo", body=b"x").status for _ in range(6)}
        check(codes == {200, status}, "%d: POST codes %s" % (status, codes))
        rf.stop()
        bad.close()
        good.stop()
    # without the condition the 503 reaches the client
    bad, good = RawBackend(answer(503)), Backend()
    rf = Ringfront(config([bad.addr, good.addr], upstream=quiet))
    codes = {request(rf.port, "GET", "/users/1").status for _ in range(6)}
    check(codes == {200, 503}, codes)
    rf.stop()
    bad.close()
    good.stop()
    # silence: response-timeout moves the GET on after response_timeout
    bad, good = RawBackend(silent), Backend()
    rf = Ringfront(config([bad.addr, good.addr], upstream=quiet +
                          "\nresponse_timeout = 300ms\nretry_on = connect-failure response-timeout"))
    for i in range(4):
        t0 = time.time()
        r = request(rf.port, "GET", "/users/%d" % i)
        check(r.status == 200 and time.time() - t0 < 2.5, (time.time() - t0, r))
    rf.stop()
    bad.close()
    good.stop()
    p = subprocess.run([RINGFRONT, "-t", "-c", "/dev/stdin"], capture_output=True, text=True,
                       input=config(["127.0.0.1:1"], upstream="retry_on = 418"), timeout=10)
    check(p.returncode != 0 and "unknown condition '418'" in p.stderr, p.stderr)
