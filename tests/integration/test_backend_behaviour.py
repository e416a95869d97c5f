"""test_backend_behaviour.py - backends that do unusual but legal things,
or break in the middle: close-delimited bodies, resets, pooled links that
die, interim responses, WebSocket upgrades, missing reason phrases,
Connection: close, early responses and bodies longer than announced.
Each backend is a scripted Python server (harness.RawBackend) so every
byte it receives and every connection it sees can be checked."""
import os
import socket
import threading
import time

from harness import (Conn, RawBackend, Ringfront, StrictError, build_request,
                     check, config, respond_ok, wait_until)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"


def ok_for(req):
    body = b"ok:" + req.target
    return OK % (len(body), body)


def serve_rest(bc):
    """Answer whatever else arrives on this connection normally."""
    respond_ok(bc)


def rf_for(backend, upstream="", server=""):
    return Ringfront(config([backend.addr], upstream=upstream, server=server))


def get(c, path, **kw):
    c.send(build_request("GET", path, **kw))
    return c.read_response()


# ---------------------------------------------------------------------------

PATTERN = bytes(range(256)) * 1200          # 300 KiB, recognisable


def test_close_delimited_response():
    def handler(bc):
        req = bc.read_request()
        if req is None:
            return
        if req.target == b"/eof10":
            bc.send(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        else:
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        for i in range(0, len(PATTERN), 50000):
            bc.send(PATTERN[i:i + 50000])
            time.sleep(0.005)
        bc.close()

    backend = RawBackend(handler)
    rf = rf_for(backend)
    for path in ("/eof10", "/eof11"):
        c = Conn(rf.port)
        # a second request pipelined behind it must not be answered out of turn
        c.send(build_request("GET", path) + build_request("GET", "/second"))
        r = c.read_response()           # no length: reads until the close
        check(r.status == 200, r)
        check(r.body == PATTERN, "%s: got %d bytes, want %d" % (path, len(r.body), len(PATTERN)))
        check((r.header("Connection") or "").lower() == "close", r.headers)
        check(r.header("Content-Length") in (None, str(len(PATTERN))), r.headers)
        c.close()
    # an HTTP/1.0 client gets the same whole body
    c = Conn(rf.port)
    c.send(build_request("GET", "/eof11", version="HTTP/1.0"))
    r = c.read_response()
    check(r.status == 200 and r.body == PATTERN, (r.status, len(r.body)))
    c.close()
    rf.stop()


def test_backend_reset_mid_response():
    def handler(bc):
        req = bc.read_request()
        if req is None:
            return
        if req.target == b"/reset":
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100000)
            time.sleep(0.05)
            bc.reset()
            return
        bc.send(ok_for(req))
        serve_rest(bc)

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port, timeout=5)
    c.send(build_request("GET", "/reset"))
    t0 = time.time()
    data = c.read_until_close()
    c.close()
    check(time.time() - t0 < 3, "client connection not closed after the backend reset")
    check(data.startswith(b"HTTP/1.1 200"), data[:100])
    check(len(data) < 1000000, "truncated response delivered as complete")
    # ringfront keeps serving, on the same and on new connections
    for i in range(3):
        c = Conn(rf.port)
        r = get(c, "/after%d" % i)
        check(r.status == 200 and r.body == b"ok:/after%d" % i, r)
        c.close()
    rf.stop()


def test_pooled_link_closed_after_answer_is_retried():
    """The backend answers (keep-alive) and closes at once: every next GET
    must still succeed, whether ringfront noticed the close or not."""
    def handler(bc):
        req = bc.read_request()
        if req is not None:
            bc.send(ok_for(req))
        bc.close()

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port)
    for i in range(30):
        r = get(c, "/n%d" % i)
        check(r.status == 200 and r.body == b"ok:/n%d" % i, (i, r))
    c.close()
    rf.stop()


def test_pooled_link_dies_with_request_in_flight():
    """The keep-alive race: the backend reads the next request on a reused
    link and closes without answering. A GET is retried once on a fresh
    link; a POST (not idempotent) must not be replayed: 502."""
    def handler(bc):
        first = bc.read_request()
        if first is None:
            return
        bc.send(ok_for(first))
        bc.read_request()           # the next one: swallow it and hang up
        bc.close()

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port)
    r = get(c, "/first")
    check(r.status == 200 and r.body == b"ok:/first", r)
    time.sleep(0.1)                 # the link is idle in the pool now
    r = get(c, "/second")
    check(r.status == 200 and r.body == b"ok:/second", r)
    conns = backend.conns
    check(len(conns) == 2, "want the retry on a second link: %r" % conns)
    check([q.target for q in conns[0].requests] == [b"/first", b"/second"], conns[0].requests)
    check([q.target for q in conns[1].requests] == [b"/second"], conns[1].requests)
    # conns[1] is pooled now and will swallow the next request: a POST
    time.sleep(0.1)
    c.send(build_request("POST", "/post", body=b"payload"))
    r = c.read_response()
    check(r.status == 502 and r.json()["code"] == 502, r)
    posts = [q for bc in backend.conns for q in bc.requests if q.target == b"/post"]
    check(len(posts) == 1, "POST replayed %d times" % len(posts))
    c.close()
    rf.stop()


def test_interim_103_relayed():
    def handler(bc):
        while True:
            req = bc.read_request(timeout=30)
            if req is None:
                return
            bc.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.02)
            bc.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            bc.send(ok_for(req))

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port)
    c.want_interim = True
    for path in ("/a", "/b"):
        c.send(build_request("GET", path))
        r = c.read_response()
        check(r.status == 103 and r.header("Link") == "</style.css>; rel=preload", r)
        r = c.read_response()
        check(r.status == 100, r)
        r = c.read_response()
        check(r.status == 200 and r.body == b"ok:" + path.encode(), r)
    c.close()
    # HTTP/1.0 clients never get a 1xx (RFC 9110 15.2)
    c = Conn(rf.port)
    c.send(build_request("GET", "/old", version="HTTP/1.0"))
    data = c.read_until_close()
    check(data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"ok:/old"), data)
    check(b" 103 " not in data and b" 100 " not in data, data)
    c.close()
    rf.stop()


def ws_backend(bc):
    req = bc.read_request()
    if req is None:
        return
    if req.header("upgrade", b"").lower() != b"websocket" or \
            b"upgrade" not in req.header("connection", b"").lower():
        bc.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        bc.close()
        return
    bc.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    bc.send(PATTERN[:100000])           # server speaks first
    # then echo everything, including bytes already buffered
    pending = bytes(bc.data[bc.pos:])
    bc.pos = len(bc.data)
    if pending:
        bc.send(pending)
    while True:
        chunk = bc._recv(30)
        if not chunk:
            break
        bc.pos = len(bc.data)
        bc.send(chunk)
    bc.close()


def test_websocket_upgrade_tunnel():
    backend = RawBackend(ws_backend)
    rf = rf_for(backend)
    c = Conn(rf.port, timeout=5)
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    r = c.read_response()
    check(r.status == 101, r)
    check((r.header("Upgrade") or "").lower() == "websocket", r.headers)
    check("upgrade" in (r.header("Connection") or "").lower(), r.headers)
    check(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r.headers)
    got = c._exact(100000)
    check(got == PATTERN[:100000], "server-to-client bytes differ")
    payload = os.urandom(100000)
    sender = threading.Thread(target=lambda: c.sock.sendall(payload))
    sender.start()
    echo = c._exact(len(payload))
    sender.join(10)
    check(echo == payload, "echoed bytes differ")
    fwd = backend.conns[0].requests[0]
    check(fwd.header("upgrade") == b"websocket" and fwd.header("sec-websocket-key"), fwd.headers)
    # several small messages both ways keep their order
    for i in range(20):
        msg = b"msg-%d;" % i
        c.send(msg)
        check(c._exact(len(msg)) == msg, i)
    c.close()
    check(wait_until(lambda: backend.conns[0].eof, 3.0), "backend side of the tunnel not closed")
    # the proxy is still fine
    c = Conn(rf.port)
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    check(c.read_response().status == 101)
    check(c._exact(100000) == PATTERN[:100000])
    c.close()
    rf.stop()


def test_websocket_backend_closes_tunnel():
    def handler(bc):
        req = bc.read_request()
        if req is None:
            return
        bc.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                b"bye")
        bc.close()

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port, timeout=5)
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    r = c.read_response()
    check(r.status == 101, r)
    t0 = time.time()
    rest = c.read_until_close()
    check(rest == b"bye", rest)
    check(time.time() - t0 < 3, "client not closed after the backend closed the tunnel")
    c.close()
    rf.stop()


def test_unrequested_101_is_502():
    def handler(bc):
        req = bc.read_request()
        if req is None:
            return
        bc.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                b"raw tunnel bytes")
        bc.drain(5)

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port)
    r = get(c, "/plain")
    check(r.status == 502 and r.json()["code"] == 502, r)
    c.close()
    check(wait_until(lambda: backend.conns[0].eof, 2.0), "link left open after an unasked 101")
    rf.stop()


def test_response_without_reason_phrase():
    def handler(bc):
        while True:
            req = bc.read_request(timeout=30)
            if req is None:
                return
            if req.target == b"/nosp":
                bc.send(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
            elif req.target == b"/empty":
                bc.send(b"HTTP/1.1 404 \r\nContent-Length: 4\r\n\r\nnope")
            else:
                bc.send(ok_for(req))

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port)
    for path, code, reasons, body in (("/nosp", 200, (b"", b"OK"), b"ok"),
                                      ("/empty", 404, (b"", b"Not Found"), b"nope")):
        c.send(build_request("GET", path))
        c.sock.settimeout(3)
        line = c._line()
        # RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
        check(line.startswith(b"HTTP/1.1 %d " % code) and line[13:] in reasons, line)
        c.buf = line + b"\r\n" + c.buf
        r = c.read_response()
        check(r.status == code and r.body == body, r)
    r = get(c, "/after")
    check(r.status == 200 and r.body == b"ok:/after", r)
    c.close()
    check(len(backend.conns) == 1, "link not reused after a reason-less response")
    rf.stop()


def test_backend_connection_close_not_reused():
    """The backend says Connection: close but leaves the socket open: the
    link must still never carry another request."""
    def handler(bc):
        while True:
            req = bc.read_request(timeout=30)
            if req is None:
                return
            body = b"ok:" + req.target
            if req.target.startswith(b"/old"):
                bc.send(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                bc.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body))

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port)
    paths = ["/c1", "/c2", "/old1", "/old2", "/c3"]
    for p in paths:
        r = get(c, p)
        check(r.status == 200 and r.body == b"ok:" + p.encode(), r)
        check((r.header("Connection") or "").lower() != "close", "client connection needlessly closed")
    c.close()
    check(len(backend.conns) == len(paths), "links reused: %d connections for %d requests"
          % (len(backend.conns), len(paths)))
    for bc in backend.conns:
        check(len(bc.requests) == 1, bc.requests)
    check(wait_until(lambda: all(bc.eof for bc in backend.conns), 2.0),
          "ringfront kept a Connection: close link open")
    rf.stop()


def extra_bytes_backend(bc):
    while True:
        try:
            req = bc.read_request(timeout=30)
        except StrictError:
            return
        if req is None:
            return
        poison = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"
        if req.target == b"/extra-now":
            bc.send(OK % (5, b"hello") + poison)
        elif req.target == b"/extra-later":
            bc.send(OK % (5, b"hello"))
            time.sleep(0.1)
            bc.send(poison)
        elif req.target == b"/extra-big":
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + PATTERN[:100000] + b"TRAILING" + poison)
        else:
            bc.send(ok_for(req))


def test_body_longer_than_content_length():
    backend = RawBackend(extra_bytes_backend)
    rf = rf_for(backend)
    c = Conn(rf.port)
    for path, body, pause in (("/extra-now", b"hello", 0), ("/extra-later", b"hello", 0.4),
                              ("/extra-big", PATTERN[:100000], 0)):
        r = get(c, path)
        check(r.status == 200 and r.body == body, (path, r.status, r.body[:50]))
        time.sleep(pause)
        r = get(c, "/next")
        check(r.status == 200 and r.body == b"ok:/next", "%s: the next response is %r" % (path, r))
        check(b"POISON" not in c.buf, c.buf)
        served = [bc for bc in backend.conns if any(q.target == path.encode() for q in bc.requests)]
        check(len(served) == 1 and served[0].requests[-1].target == path.encode(),
              "%s: link with surplus bytes was reused: %r" % (path, served and served[0].requests))
        check(wait_until(lambda: served[0].eof, 2.0), "%s: link with surplus bytes kept open" % path)
    c.sock.settimeout(0.2)
    try:
        extra = c.sock.recv(1000)
    except socket.timeout:
        extra = b""
    check(extra == b"", "surplus bytes reached the client: %r" % extra)
    c.close()
    rf.stop()


def test_early_response_before_request_body():
    """The backend answers as soon as it has the head of a POST, while the
    client is still sending the body: the link then carries half a request
    and must be closed, and the next request goes to a fresh link."""
    def handler(bc):
        head = bc.read_head()
        if head is None:
            return
        if b"/early" in head.split(b"\r\n")[0]:
            bc.send(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nlate")
            bc.drain(10)
            return
        bc.pos = 0
        serve_rest(bc)

    backend = RawBackend(handler)
    rf = rf_for(backend)
    c = Conn(rf.port, timeout=5)
    c.send(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"a" * 1000)
    r = c.read_response()
    check(r.status == 413 and r.body == b"late", r)
    try:
        c.send(b"a" * 199000)
    except OSError:
        pass
    c.close()
    check(wait_until(lambda: backend.conns[0].eof, 3.0), "half-sent link kept open")
    c = Conn(rf.port)
    r = get(c, "/next")
    check(r.status == 200 and r.body == b"ok:/next", r)
    c.close()
    check(len(backend.conns) == 2, backend.conns)
    rf.stop()
