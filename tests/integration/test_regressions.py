"""test_regressions.py - bugs found by the differential and behaviour tests,
each kept as a test: HTTP/1.0 without Host, half-closing clients, tunnel
half-close and early bytes, chunked bodies over max_body_size, access-log
lines for closing errors, and 1xx floods against a slow client."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Backend, Conn, RawBackend, Ringfront, StrictError, build_request,  # noqa: E402
                     check, config, proc_rss_kb, request, strict_parse_all, wait_until)


def test_http10_request_without_host_gets_a_host_upstream():
    backend = RawBackend(lambda bc: bc.drain(3))
    rf = Ringfront(config([backend.addr]))
    c = Conn(rf.port, timeout=3)
    c.send(b"GET /old HTTP/1.0\r\n\r\n")
    check(wait_until(lambda: backend.conns and b"\r\n\r\n" in backend.conns[0].data, 2.0), "not forwarded")
    data = bytes(backend.conns[0].data)
    c.close()
    check(data.startswith(b"GET /old HTTP/1.1\r\n"), data)
    # forwarded as HTTP/1.1, so it needs exactly one Host (may be empty)
    try:
        reqs, left = strict_parse_all(data)
    except StrictError as e:
        check(False, "forwarded request is not valid HTTP/1.1 (%s):\n%r" % (e, data))
    check(len(reqs) == 1 and not left, data)
    rf.stop()


def test_post_body_then_half_close_still_answered():
    b = Backend()
    rf = Ringfront(config([b.addr]))
    failures = []
    for size in (10, 1000, 100000, 1000000):
        for _ in range(2):
            c = Conn(rf.port, timeout=5)
            c.send(build_request("POST", "/echo", body=b"q" * size))
            c.sock.shutdown(socket.SHUT_WR)     # "that's all": a legal half-close
            try:
                r = c.read_response()
                if r.status != 200 or r.json()["bytes"] != size:
                    failures.append((size, r))
            except (EOFError, ConnectionResetError) as e:
                failures.append((size, repr(e)))
            c.close()
    check(not failures, "POST + FIN not answered: %r" % failures)
    rf.stop()


def tunnel_backend(bc):
    req = bc.read_request()
    if req is None:
        return
    time.sleep(0.1)
    bc.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    bc.drain(5)


UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_tunnel_client_half_close_delivers_every_byte():
    backend = RawBackend(tunnel_backend)
    rf = Ringfront(config([backend.addr]))
    got = []
    for _ in range(5):
        n = len(backend.conns)
        c = Conn(rf.port, timeout=3)
        c.send(UPGRADE)
        check(c.read_response().status == 101)
        c.send(b"PING" * 20000)
        c.sock.shutdown(socket.SHUT_WR)
        check(wait_until(lambda: len(backend.conns) > n and backend.conns[n].eof, 3.0), "tunnel not closed")
        bc = backend.conns[n]
        got.append(len(bc.data) - bc.pos)
        c.close()
    check(all(g == 80000 for g in got), "bytes the backend got of 80000 before the FIN: %r" % got)
    rf.stop()


def test_tunnel_relays_bytes_sent_before_101():
    backend = RawBackend(tunnel_backend)
    rf = Ringfront(config([backend.addr]))
    c = Conn(rf.port, timeout=3)
    c.send(UPGRADE + b"EARLY")
    check(c.read_response().status == 101)
    bc = backend.conns[0]
    ok = wait_until(lambda: bytes(bc.data[bc.pos:]) == b"EARLY", 1.5)
    seen = bytes(bc.data[bc.pos:])
    c.close()
    check(ok, "bytes sent before the 101 are held back: after 1.5 s the backend has %r" % seen)
    rf.stop()


def test_chunked_body_over_max_body_size_is_413():
    b = Backend()
    rf = Ringfront(config([b.addr], server="max_body_size = 1k"))
    c = Conn(rf.port, timeout=3)
    body = b"x" * 5000
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
           % (len(body), body))
    try:
        r = c.read_response()
        status = r.status
    except (EOFError, ConnectionResetError):
        status = None
    c.close()
    check(status == 413, "5000-byte chunked body with max_body_size = 1k: got %r" % status)
    rf.stop()


def test_access_log_records_413():
    b = Backend()
    path = "/tmp/rf-test-access413-%d.log" % os.getpid()
    rf = Ringfront(config([b.addr], server="max_body_size = 1k\naccess_log = %s" % path))
    try:
        r = request(rf.port, "POST", "/echo", body=b"y" * 2000,
                    headers={"X-Request-Id": "too-big-1"})
        check(r.status == 413, r)
        request(rf.port, "GET", "/users/1", headers={"X-Request-Id": "fine-1"})
        rf.stop()
        with open(path) as f:
            text = f.read()
        check("request_id=fine-1" in text, text)
        check("status=413" in text and "request_id=too-big-1" in text,
              "413 not in the access log:\n%s" % text)
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_interim_flood_to_slow_client_bounded_memory():
    stop = threading.Event()

    def flood(bc):
        req = bc.read_request()
        if req is None:
            return
        if req.target != b"/flood":
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            bc.drain(5)
            return
        one = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        try:
            for _ in range(100):
                if stop.is_set():
                    break
                bc.send(one * 2000)
        except OSError:
            pass
        bc.drain(5)

    backend = RawBackend(flood)
    rf = Ringfront(config([backend.addr]))
    time.sleep(0.2)
    base = proc_rss_kb(rf.pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", rf.port))
    s.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")    # and never read
    peak = base
    for _ in range(20):
        time.sleep(0.1)
        peak = max(peak, proc_rss_kb(rf.pid))
    # other clients of the worker are still served meanwhile
    r = request(rf.port, "GET", "/other", timeout=3)
    stop.set()
    s.close()
    check(r.status == 200, "another client got %r during the flood" % r)
    check(peak - base < 32 * 1024, "RSS grew %d kB for one slow client" % (peak - base))
    rf.stop()


def test_no_descriptor_for_a_backend_link_is_not_the_servers_fault():
    """Found by `make test-idle`: with every descriptor taken by idle
    clients, socket() for a backend connection fails (EMFILE). That used
    to count as the server's connect failure: five of them opened its
    circuit and ejected it for 10 s (doubling on repeats), so every request
    got a 503 long after the shortage had passed. Now such a request gets
    a 503 and the server keeps its health."""
    from test_abuse import LimitedRingfront, census, raise_nofile
    raise_nofile(4096)
    b = Backend()
    rf = LimitedRingfront(config([b.addr], workers=1, server="max_connections = 1000",
                                 upstream="keepalive = 0"), 48)
    check(request(rf.port, "GET", "/users/1").status == 200)
    held = []
    for _ in range(80):         # more than the 48 descriptors: some wait in the backlog
        try:
            s = socket.create_connection(("127.0.0.1", rf.port), timeout=2)
            s.sendall(build_request("GET", "/users/1"))
            held.append(Conn.__new__(Conn))
            held[-1].sock, held[-1].buf = s, b""
        except OSError:
            pass
    # the accepted ones are answered (200 while a descriptor was left for
    # the backend, 503 after); the rest stay queued
    time.sleep(0.5)
    answered = []
    for c in held:
        c.sock.settimeout(0.02)
        try:
            answered.append((c, c.read_response().status))
        except (OSError, EOFError, ValueError):
            pass
    check(answered, "no client was answered")
    statuses = [st for _, st in answered]
    check(set(statuses) <= {200, 503}, statuses)
    # every descriptor is taken: a further request on an idle one cannot
    # get a backend connection, more times than it takes to open a circuit
    shortage = []
    for c, st in answered[:8]:
        c.sock.settimeout(3)
        try:
            c.send(build_request("GET", "/users/2"))
            shortage.append(c.read_response().status)
        except (OSError, EOFError, ValueError) as e:
            shortage.append(repr(e))
    check(shortage.count(503) >= 6, "expected 503s while out of descriptors: %r" % shortage)
    for c in held:
        c.close()
    wait_until(lambda: census(rf)["client"] == 0, 5.0, 0.05)
    # the shortage is over: the server was never held responsible
    st = [request(rf.port, "GET", "/users/%d" % i).status for i in range(10)]
    check(st == [200] * 10, "after the shortage: %r\n%s" % (st, rf.output()[-1500:]))
    out = rf.output()
    check("circuit open" not in out and "server ejected" not in out, out[-1500:])
    check("out of descriptors for a backend connection" in out, out[-1500:])
    rf.stop()
