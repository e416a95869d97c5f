"""test_limits_and_logs.py - the access log and the error log file, memory
under deep pipelining with a slow reader, hundreds of idle connections,
clients that give up half-way through a body or half-close, and
Expect: 100-continue against max_body_size."""
import os
import re
import resource
import socket
import time

from harness import (Backend, Conn, RawBackend, Ringfront, build_request, check,
                     config, is_sanitized, proc_rss_kb, request, strict_parse_all,
                     wait_until)


def tmp_path(tag):
    return "/tmp/rf-test-%s-%d-%d.log" % (tag, os.getpid(), int(time.time() * 1e6) % 10**9)


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


LOG_LINE = re.compile(r'target="([^"]*)" status=(\d+) .*request_id=(\S+)$')


def access_entries(path):
    out = []
    for line in read_file(path).splitlines():
        m = LOG_LINE.search(line)
        if m:
            out.append((m.group(1), int(m.group(2)), m.group(3)))
    return out


def test_access_log_one_line_per_request():
    b = Backend()
    path = tmp_path("access")
    rf = Ringfront(config([b.addr], server="access_log = %s" % path,
                          routes=[("/users", "app"), ("/status", "app")]))
    try:
        want = []
        r = request(rf.port, "GET", "/users/1")
        want.append(("/users/1", 200, r.header("X-Request-Id")))
        r = request(rf.port, "GET", "/users/2", headers={"X-Request-Id": "client-id-42"})
        check(r.header("X-Request-Id") == "client-id-42", r.headers)
        want.append(("/users/2", 200, "client-id-42"))
        r = request(rf.port, "GET", "/status/503")
        check(r.status == 503, r)
        want.append(("/status/503", 503, r.header("X-Request-Id")))
        r = request(rf.port, "GET", "/nowhere")
        check(r.status == 404, r)
        want.append(("/nowhere", 404, r.header("X-Request-Id")))
        # keep-alive: several on one connection
        c = Conn(rf.port)
        for i in range(3, 6):
            c.send(build_request("GET", "/users/%d" % i))
            r = c.read_response()
            want.append(("/users/%d" % i, 200, r.header("X-Request-Id")))
        c.close()
        check(all(w[2] for w in want), want)
        t0 = time.time()
        ok = wait_until(lambda: len(access_entries(path)) >= len(want), 2.0, 0.05)
        check(ok, "access log has %d of %d lines after %.1fs:\n%s"
              % (len(access_entries(path)), len(want), time.time() - t0, read_file(path)))
        got = access_entries(path)
        check(sorted(got) == sorted(want), "access log:\n%s\nwant %r" % (read_file(path), want))
        # flushed at shutdown too
        request(rf.port, "GET", "/users/9", headers={"X-Request-Id": "at-shutdown"})
        rf.stop()
        check(("/users/9", 200, "at-shutdown") in access_entries(path), read_file(path))
        check(len(access_entries(path)) == len(want) + 1, read_file(path))
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_log_file_gets_start_and_stop_lines():
    b = Backend()
    path = tmp_path("error")
    try:
        rf = Ringfront(config([b.addr], server="log_file = %s" % path))
        check(wait_until(lambda: "ringfront started" in read_file(path), 2.0),
              "no start line in log_file: %r" % read_file(path))
        check("ringfront started" not in rf.output(), "start line went to stderr: %r" % rf.output())
        check(request(rf.port, "GET", "/users/1").status == 200)
        rf.stop()
        text = read_file(path)
        check("stopped" in text, text)
        for line in text.splitlines():
            check(line.startswith("ts=") and " level=" in line, "unstructured log line: %r" % line)
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_deep_pipeline_slow_reader_bounded_memory():
    b = Backend()
    rf = Ringfront(config([b.addr]))
    time.sleep(0.2)
    base = proc_rss_kb(rf.pid)
    n = 2000
    paths = ["/users/%d" % i if i % 2 == 0 else "/bytes/%d" % (8000 + i) for i in range(n)]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s.connect(("127.0.0.1", rf.port))
    c = Conn.__new__(Conn)
    c.sock, c.buf = s, b""
    s.settimeout(10)
    c.send(b"".join(build_request("GET", p) for p in paths))    # one write, ~70 KB
    peak = base
    slow_until = time.time() + 1.5
    slow = b""
    while time.time() < slow_until:
        slow += s.recv(1024)
        peak = max(peak, proc_rss_kb(rf.pid))
        time.sleep(0.01)
    c.buf = slow
    for i, p in enumerate(paths):
        r = c.read_response()
        check(r.status == 200, (i, r))
        if i % 2 == 0:
            check(r.json()["id"] == i, "response %d out of order: %r" % (i, r.body[:80]))
        else:
            check(len(r.body) == 8000 + i, "response %d out of order: %d bytes" % (i, len(r.body)))
        if i % 100 == 0:
            peak = max(peak, proc_rss_kb(rf.pid))
    c.close()
    growth = peak - base
    limit = 64 * 1024
    if is_sanitized(rf.pid):        # ASan's shadow memory and quarantine
        limit = base + 96 * 1024
    check(peak < limit and growth < 32 * 1024,
          "RSS %d kB (start %d kB, growth %d kB) for %d pipelined requests" % (peak, base, growth, n))
    rf.stop()


def test_500_idle_connections_then_served():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    b = Backend()
    rf = Ringfront(config([b.addr]))
    n = 500
    conns = []
    for _ in range(n):
        conns.append(Conn(rf.port, timeout=10))
    time.sleep(0.5)
    # all still open: nothing to read, no EOF
    for i, c in enumerate(conns):
        c.sock.setblocking(False)
        try:
            data = c.sock.recv(1)
            check(False, "idle connection %d got %r" % (i, data))
        except BlockingIOError:
            pass
        c.sock.setblocking(True)
        c.sock.settimeout(10)
    for i, c in enumerate(conns):
        c.send(build_request("GET", "/users/%d" % i))
    for i, c in enumerate(conns):
        r = c.read_response()
        check(r.status == 200 and r.json()["id"] == i, (i, r))
    for c in conns:
        c.close()
    check(request(rf.port, "GET", "/users/7").json()["id"] == 7)
    rf.stop()


def half_body_backend(bc):
    """Answer GETs; for a POST read the head and whatever body comes."""
    while True:
        head = bc.read_head(timeout=30)
        if head is None:
            return
        if head.startswith(b"POST"):
            bc.drain(30)            # the rest of the body never completes
            return
        line = head.split(b"\r\n")[0].split(b" ")
        body = b"ok:" + line[1]
        bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_client_abandons_half_body():
    backend = RawBackend(half_body_backend)
    rf = Ringfront(config([backend.addr]))
    for variant in ("length", "chunked"):
        post = b"POST /half-%s HTTP/1.1" % variant.encode()
        after = b"GET /after-%s HTTP/1.1" % variant.encode()
        # a pooled link first, so the POST can reuse it
        c = Conn(rf.port)
        c.send(build_request("GET", "/warm"))
        check(c.read_response().body == b"ok:/warm")
        if variant == "length":
            c.send(post + b"\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 500)
        else:
            c.send(post + b"\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + b"a" * 500)

        def half_links():
            with backend.lock:
                return [bc for bc in backend.conns if post in bc.data]
        check(wait_until(lambda: len(half_links()) == 1 and half_links()[0].data.endswith(b"a" * 500), 2.0),
              "%s: the POST and its half body never reached the backend" % variant)
        c.close()
        half = half_links()[0]
        check(wait_until(lambda: half.eof, 2.0), "%s: link with half a request left open" % variant)
        # the next request parses cleanly on a fresh link
        c = Conn(rf.port)
        c.send(after + b"\r\nHost: x\r\n\r\n")
        r = c.read_response()
        check(r.status == 200 and r.body == b"ok:" + after.split(b" ")[1], r)
        c.close()
        check(after not in half.data, "%s: request sent behind a half body" % variant)
        with backend.lock:
            carrier = [bc for bc in backend.conns if after in bc.data]
        check(len(carrier) == 1, carrier)
        reqs, left = strict_parse_all(bytes(carrier[0].data))
        check(not left and reqs[-1].target == after.split(b" ")[1], carrier[0].data)
    rf.stop()


def test_get_then_half_close_still_answered():
    b = Backend()
    rf = Ringfront(config([b.addr]))
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/3"))
    c.sock.shutdown(socket.SHUT_WR)
    r = c.read_response()
    check(r.status == 200 and r.json()["id"] == 3, r)
    check(c.is_closed(), "connection left open after the client's FIN")
    c.close()
    rf.stop()


def test_expect_100_continue_over_limit_is_413_without_100():
    b = Backend()
    rf = Ringfront(config([b.addr], server="max_body_size = 1k"))
    before = b.stats()["requests"]
    c = Conn(rf.port, timeout=3)
    c.want_interim = True
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    r = c.read_response()
    check(r.status == 413 and r.json()["code"] == 413, "want 413 first, got %r" % r)
    check(c.is_closed(), "connection not closed after 413")
    c.close()
    check(b.stats()["requests"] - before == 0, "the over-limit request reached the backend")
    # within the limit: 100 first, then the answer
    c = Conn(rf.port, timeout=3)
    c.want_interim = True
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n")
    r = c.read_response()
    check(r.status == 100, r)
    c.send(b"z" * 500)
    c.want_interim = False
    r = c.read_response()
    check(r.status == 200 and r.json()["bytes"] == 500, r)
    c.close()
    rf.stop()
