"""harness.py - start the real ringfront binary and demo backends on free
loopback ports, talk to them through raw sockets, and check that the
processes end cleanly (no sanitizer report, no crash)."""
import os
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# RINGFRONT=path runs the tests against another binary (make test-tsan:
# build/tsan/ringfront) without replacing ./ringfront.
RINGFRONT = os.path.abspath(os.environ.get("RINGFRONT") or os.path.join(ROOT, "ringfront"))
DEMO = os.path.join(ROOT, "build", "demo-backend")
# RF_IO=uring|epoll|auto: the event backend ([server] io) of every ringfront
# the tests start (make test-epoll); unset = what each configuration says.
IO = os.environ.get("RF_IO", "")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "ThreadSanitizer", "UndefinedBehaviorSanitizer")

_procs = []
_tempfiles = []     # removed by remove_tempfiles() once a test is judged


class TestFailure(Exception):
    pass


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_opens(port, timeout=10.0, proc=None):
    """True once 127.0.0.1:<port> accepts a connection; False after <timeout>
    seconds, or as soon as <proc> (anything with poll()) has exited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def wait_port(port, timeout=10.0, proc=None):
    if port_opens(port, timeout, proc):
        return
    if proc is not None and proc.poll() is not None:
        raise TestFailure("process exited early: %s" % proc.output())
    raise TestFailure("port %d did not open" % port)


class Proc:
    """A child process whose stderr goes to a file, stopped by PID."""

    def __init__(self, argv, env=None):
        self.errf = tempfile.NamedTemporaryFile(prefix="rf-test-", suffix=".log", delete=False)
        _tempfiles.append(self.errf.name)
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=self.errf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid
        _procs.append(self)

    def poll(self):
        return self.p.poll()

    def output(self):
        with open(self.errf.name, errors="replace") as f:
            return f.read()

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self in _procs:
            _procs.remove(self)
        return self.p.returncode

    def sanitizer_report(self):
        out = self.output()
        for mark in SANITIZER_MARKS:
            if mark in out:
                return out
        return None


class Backend(Proc):
    def __init__(self, *flags, port=None):
        self.port = port or free_port()
        super().__init__([DEMO, "--port", str(self.port), "--quiet"] + list(flags))
        wait_port(self.port, proc=self)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stats(self):
        r = request(self.port, "GET", "/__stats")
        import json
        return json.loads(r.body)


def loopback_listen_ports(ini):
    """The 127.0.0.1 ports of every `listen =` line of <ini>."""
    ports = []
    for line in ini.splitlines():
        t = line.strip()
        if not t.startswith("listen") or "=" not in t or t.split("=")[0].strip() != "listen":
            continue
        for addr in t.split("=", 1)[1].split(";")[0].split():
            if addr.startswith("127.0.0.1:") and addr.rsplit(":", 1)[1].isdigit():
                ports.append(int(addr.rsplit(":", 1)[1]))
    return ports


def with_io(ini):
    """<ini> with `io = $RF_IO` in its [server] section, when RF_IO is set and
    the text does not choose a backend itself. The line takes the place of
    a blank one in that section when there is one, so that the line numbers
    of error messages stay what the test expects."""
    if not IO:
        return ini
    lines = ini.split("\n")
    sec, at, blank = None, None, None
    for i, ln in enumerate(lines):
        t = ln.strip()
        if t.startswith("["):
            sec = t
            if t == "[server]" and at is None:
                at = i + 1
        elif sec == "[server]":
            if t.split("=")[0].strip() == "io":
                return ini
            if not t and blank is None:
                blank = i
    if blank is not None:
        lines[blank] = "io = " + IO
    elif at is not None:
        lines.insert(at, "io = " + IO)
    else:
        return "[server]\nio = %s\n\n" % IO + ini
    return "\n".join(lines)


class Ringfront(Proc):
    """ringfront on <ini>; <wrap> is a command line to run it under."""

    def __init__(self, ini, wait=True, wrap=()):
        self.port = None
        ini = with_io(ini)
        fd, self.ini = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
        _tempfiles.append(self.ini)
        with os.fdopen(fd, "w") as f:
            f.write(ini)
        for line in ini.splitlines():
            if line.strip().startswith("listen") and self.port is None:
                self.port = int(line.split("=")[1].split(";")[0].strip().split()[0].rsplit(":", 1)[1])
        super().__init__(list(wrap) + [RINGFRONT, "-c", self.ini])
        if wait:
            wait_port(self.port, proc=self)
            # the other loopback listeners (admin, rate-limit and Redis
            # ports) are opened just after the first one
            for p in loopback_listen_ports(ini):
                if p != self.port:
                    wait_port(p, proc=self)

    def stop(self, timeout=15):
        rc = super().stop(timeout)
        report = self.sanitizer_report()
        check(report is None, "sanitizer report:\n" + (report or "")[-4000:])
        check(rc == 0, "ringfront exited %s:\n%s" % (rc, self.output()[-3000:]))
        return rc


def config(backends, server="", upstream="", routes=None, workers=1, port=None):
    """An INI for one upstream 'app' over <backends> (addresses)."""
    port = port or free_port()
    lines = ["[server]", "listen = 127.0.0.1:%d" % port, "workers = %d" % workers,
             "log_level = info", server, "",
             "[upstream app]", "servers = " + " ".join(backends),
             "health_path =", upstream, "", "[route]"]
    for prefix, up in (routes or [("/", "app")]):
        lines.append("%s = %s" % (prefix, up))
    return with_io("\n".join(lines) + "\n")


def remove_tempfiles():
    """Delete the logs and configs of the processes a test started."""
    while _tempfiles:
        try:
            os.unlink(_tempfiles.pop())
        except OSError:
            pass


def cleanup_all():
    """Stop whatever a test left running (by PID); report leftovers."""
    left = list(_procs)
    for p in left:
        try:
            Proc.stop(p, timeout=5)
        except Exception:
            pass
    return left


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers      # list of (name, value)
        self.body = body
        self.version = version

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.body[:200])


class Conn:
    """A raw client connection that reads responses one by one."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_request=False):
        while True:
            status_line = self._line().decode("latin-1")
            version, rest = status_line.split(" ", 1)
            code, _, reason = rest.partition(" ")
            headers = []
            while True:
                line = self._line()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers.append((k, v.strip()))
            resp = Response(int(code), reason, headers, b"", version)
            if resp.status >= 200 or resp.status == 101:
                break
            # interim responses are returned too when asked for explicitly
            if getattr(self, "want_interim", False):
                return resp
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if head_request or resp.status in (204, 304) or resp.status == 101:
            return resp
        if te.endswith("chunked"):
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            resp.body = body
        elif cl is not None:
            resp.body = self._exact(int(cl))
        else:
            resp.body = self.read_until_close()
        return resp

    def read_until_close(self):
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        data, self.buf = self.buf, b""
        return data

    def is_closed(self, wait=2.0):
        """True when the peer closed (EOF or reset) within <wait> seconds."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
            if data:
                self.buf += data
                return False
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def build_request(method, path, headers=None, body=None, version="HTTP/1.1", host="localhost"):
    hdrs = [("Host", host)] if host else []
    hdrs += list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
    data = head.encode()
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def request(port, method, path, headers=None, body=None, timeout=10.0, **kw):
    """One request on a fresh connection; returns the Response."""
    c = Conn(port, timeout)
    try:
        c.send(build_request(method, path, headers, body, **kw))
        return c.read_response(head_request=(method == "HEAD"))
    finally:
        c.close()


def raw_exchange(port, data, timeout=5.0):
    """Send raw bytes, return everything received until the peer closes."""
    c = Conn(port, timeout)
    try:
        c.send(data)
        return c.read_until_close()
    except socket.timeout:
        data, c.buf = c.buf, b""
        return data + b"<timeout>"
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Scripted raw backends and a strict HTTP/1.1 request parser (for the
# differential smuggling tests and misbehaving-backend tests).
# ---------------------------------------------------------------------------
import re as _re
import threading as _threading

TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_REQ_LINE = _re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) (HTTP/1\.[01])$")
_CHUNK_EXT = _re.compile(rb'^(?:[ \t]*;[ \t]*[!#$%&\'*+\-.^_`|~0-9A-Za-z]+'
                         rb'(?:[ \t]*=[ \t]*(?:[!#$%&\'*+\-.^_`|~0-9A-Za-z]+|'
                         rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*$')


class StrictError(Exception):
    """The bytes are not one unambiguous HTTP/1.1 message."""


class ParsedRequest:
    def __init__(self, method, target, version, headers, body, framing, raw, trailers):
        self.method = method        # bytes
        self.target = target        # bytes
        self.version = version      # bytes
        self.headers = headers      # list of (name bytes, value bytes)
        self.body = body            # decoded body bytes
        self.framing = framing      # "none" | "length" | "chunked"
        self.raw = raw              # the exact bytes of the message
        self.trailers = trailers

    def header_all(self, name):
        name = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name, default=None):
        vals = self.header_all(name)
        return vals[0] if vals else default

    def __repr__(self):
        return "<ParsedRequest %r %r %s body=%r>" % (self.method, self.target,
                                                     self.framing, self.body[:60])


def _strict_line_ok(line):
    return b"\r" not in line and b"\n" not in line


def _check_value(v):
    for ch in v:
        if ch != 9 and (ch < 0x20 or ch == 0x7f):
            return False
    return True


def strict_parse_request(buf, start=0):
    """Parse one request from buf[start:] as a strict server would.
    Returns (ParsedRequest, end offset), None when incomplete, and raises
    StrictError for anything ambiguous: bare CR/LF, bad tokens, several
    or conflicting framing fields, a Host count other than one, bad chunks."""
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        part = buf[start:]
        if _re.search(rb"(?<!\r)\n", part) or _re.search(rb"\r(?!\n|$)", part):
            raise StrictError("bare CR or LF in head %r" % part[:200])
        return None
    head = buf[start:end]
    lines = head.split(b"\r\n")
    for ln in lines:
        if not _strict_line_ok(ln):
            raise StrictError("bare CR or LF in %r" % ln[:200])
    m = _REQ_LINE.match(lines[0])
    if not m:
        raise StrictError("bad request line %r" % lines[0][:200])
    method, target, version = m.groups()
    headers = []
    for ln in lines[1:]:
        i = ln.find(b":")
        if i <= 0 or any(c not in TCHARS for c in ln[:i]):
            raise StrictError("bad field line %r" % ln[:200])
        v = ln[i + 1:].strip(b" \t")
        if not _check_value(v):
            raise StrictError("bad field value %r" % ln[:200])
        headers.append((ln[:i], v))
    names = [k.lower() for k, _ in headers]
    if names.count(b"host") != 1:
        raise StrictError("%d Host fields" % names.count(b"host"))
    host = [v for k, v in headers if k.lower() == b"host"][0]
    if _re.search(rb"[\s,@/]", host):
        raise StrictError("bad Host %r" % host)
    cls = [v for k, v in headers if k.lower() == b"content-length"]
    tes = [v for k, v in headers if k.lower() == b"transfer-encoding"]
    if len(cls) > 1 or len(tes) > 1 or (cls and tes):
        raise StrictError("ambiguous framing CL=%r TE=%r" % (cls, tes))
    pos = end + 4
    trailers = []
    if tes:
        if tes[0].lower() != b"chunked":
            raise StrictError("Transfer-Encoding %r" % tes[0])
        body = b""
        while True:
            le = buf.find(b"\r\n", pos)
            if le < 0:
                if _re.search(rb"[\r\n]", buf[pos:pos + 4096]) and not buf[pos:].endswith(b"\r"):
                    raise StrictError("bare CR/LF in chunk line %r" % buf[pos:pos + 80])
                return None
            line = buf[pos:le]
            if not _strict_line_ok(line):
                raise StrictError("bad chunk line %r" % line[:80])
            mm = _re.match(rb"^([0-9A-Fa-f]+)(.*)$", line)
            if not mm or not _CHUNK_EXT.match(mm.group(2)):
                raise StrictError("bad chunk line %r" % line[:80])
            size = int(mm.group(1), 16)
            if size >= 1 << 62:
                raise StrictError("chunk size %r" % mm.group(1))
            pos = le + 2
            if size == 0:
                while True:
                    le = buf.find(b"\r\n", pos)
                    if le < 0:
                        return None
                    line = buf[pos:le]
                    pos = le + 2
                    if not line:
                        break
                    i = line.find(b":")
                    if i <= 0 or any(c not in TCHARS for c in line[:i]) or \
                            not _check_value(line[i + 1:]) or not _strict_line_ok(line):
                        raise StrictError("bad trailer %r" % line[:80])
                    trailers.append((line[:i], line[i + 1:].strip(b" \t")))
                break
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos:pos + size]
            if buf[pos + size:pos + size + 2] != b"\r\n":
                raise StrictError("chunk data not followed by CRLF")
            pos += size + 2
        framing = "chunked"
    elif cls:
        if not _re.match(rb"^[0-9]{1,18}$", cls[0]):
            raise StrictError("Content-Length %r" % cls[0])
        n = int(cls[0])
        if len(buf) < pos + n:
            return None
        body = buf[pos:pos + n]
        pos += n
        framing = "length"
    else:
        body, framing = b"", "none"
    return ParsedRequest(method, target, version, headers, body, framing,
                         bytes(buf[start:pos]), trailers), pos


def strict_parse_all(data):
    """Parse <data> as a sequence of whole requests. Returns (requests,
    leftover bytes of an incomplete one); raises StrictError."""
    reqs, pos = [], 0
    while pos < len(data):
        r = strict_parse_request(data, pos)
        if r is None:
            return reqs, bytes(data[pos:])
        req, pos = r
        reqs.append(req)
    return reqs, b""


class BackendConn:
    """One connection accepted by a RawBackend. Everything received is kept
    in <data>; <eof> / <reset> tell how the peer (ringfront) ended it."""

    def __init__(self, backend, sock, index):
        self.backend = backend
        self.sock = sock
        self.index = index
        self.data = bytearray()
        self.pos = 0                # parse position of read_request
        self.requests = []
        self.errors = []
        self.eof = False
        self.reset_by_peer = False
        self.closed = False
        self.done = _threading.Event()

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, OSError):
            if self.closed:
                return b""
            self.reset_by_peer = True
            chunk = b""
        with self.backend.lock:
            if chunk:
                self.data += chunk
            else:
                self.eof = True
        return chunk

    def read_request(self, timeout=10.0):
        """The next request (strictly parsed), or None at end of stream."""
        deadline = time.time() + timeout
        while True:
            try:
                r = strict_parse_request(self.data, self.pos)
            except StrictError as e:
                self.errors.append(str(e))
                raise
            if r is not None:
                req, self.pos = r
                self.requests.append(req)
                return req
            if self.eof:
                return None
            left = deadline - time.time()
            if left <= 0:
                raise TestFailure("backend: no complete request within %.1fs" % timeout)
            self._recv(left)

    def read_head(self, timeout=10.0):
        """Bytes up to and including the first CRLFCRLF not yet consumed."""
        deadline = time.time() + timeout
        while True:
            i = self.data.find(b"\r\n\r\n", self.pos)
            if i >= 0:
                head = bytes(self.data[self.pos:i + 4])
                self.pos = i + 4
                return head
            if self.eof or time.time() > deadline:
                return None
            self._recv(max(0.01, deadline - time.time()))

    def read_exact(self, n, timeout=10.0):
        deadline = time.time() + timeout
        while len(self.data) - self.pos < n and not self.eof and time.time() < deadline:
            self._recv(max(0.01, deadline - time.time()))
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(out)
        return out

    def drain(self, timeout=30.0):
        """Read (and record) until the peer closes or <timeout>."""
        deadline = time.time() + timeout
        while not self.eof and time.time() < deadline:
            self._recv(min(0.2, max(0.01, deadline - time.time())))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def reset(self):
        """Close with an RST (SO_LINGER 0)."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def respond_ok(bc):
    """Default RawBackend handler: answer every strictly parsed request with
    a fixed 200 carrying Content-Length."""
    while True:
        try:
            req = bc.read_request(timeout=30)
        except StrictError:
            bc.close()
            return
        if req is None:
            return
        body = b"ok:" + req.target
        bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Raw-Conn: %d\r\n\r\n%s"
                % (len(body), bc.index, body))


_raw_backends = []


class RawBackend:
    """A Python backend on a free loopback port. Every accepted connection
    runs handler(BackendConn) in its own thread; when the handler returns
    without closing, the connection is drained (recorded) until ringfront
    closes it, so reuse or closing of a link stays observable."""

    def __init__(self, handler=None, port=None):
        self.handler = handler or respond_ok
        self.lock = _threading.Lock()
        self.conns = []
        self.stopping = False
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port or 0))
        self.lsock.listen(1024)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.thread = _threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        _raw_backends.append(self)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept_loop(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                bc = BackendConn(self, s, len(self.conns))
                self.conns.append(bc)
            _threading.Thread(target=self._run, args=(bc,), daemon=True).start()

    def _run(self, bc):
        try:
            self.handler(bc)
            if not bc.closed:
                bc.drain(timeout=60)
        except Exception as e:  # noqa: BLE001
            bc.errors.append("handler: %r" % e)
        finally:
            bc.close()
            bc.done.set()

    def snapshot(self):
        """{conn index: bytes received so far}, to diff what came later."""
        with self.lock:
            return {bc.index: len(bc.data) for bc in self.conns}

    def since(self, snap):
        """[(BackendConn, bytes received since <snap>)] for conns with news."""
        out = []
        with self.lock:
            for bc in self.conns:
                new = bytes(bc.data[snap.get(bc.index, 0):])
                if new:
                    out.append((bc, new))
        return out

    def wait_conns(self, n, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.conns) >= n:
                    return True
            time.sleep(0.01)
        return False

    def close(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for bc in conns:
            bc.close()
        if self in _raw_backends:
            _raw_backends.remove(self)


def wait_until(pred, timeout=3.0, step=0.01):
    """Poll pred() until true or timeout; returns its last value."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


def read_responses(conn, max_n, lull=0.5, head_request=False):
    """Read up to max_n responses from a harness Conn. Returns (responses,
    eof): eof is True when the peer closed (or reset) while reading. Stops
    early at EOF or after <lull> seconds without a complete response."""
    out = []
    conn.sock.settimeout(lull)
    try:
        while len(out) < max_n:
            out.append(conn.read_response(head_request=head_request))
    except (EOFError, ConnectionResetError):
        return out, True
    except (socket.timeout, ValueError, IndexError):
        return out, False
    return out, False


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def is_sanitized(pid=None):
    """True when ./ringfront is a sanitizer build: AddressSanitizer (debug)
    or ThreadSanitizer (tsan), both slower and with shadow memory in RSS."""
    try:
        if pid is not None:
            with open("/proc/%d/maps" % pid) as f:
                maps = f.read()
                if "libasan" in maps or "libtsan" in maps:
                    return True
        out = subprocess.run(["nm", "-D", RINGFRONT], capture_output=True, text=True,
                             timeout=10).stdout
        return "__asan_init" in out or "__tsan_init" in out
    except (OSError, subprocess.SubprocessError):
        return False


_cleanup_all_procs = cleanup_all


def cleanup_all():  # noqa: F811 - extends the runner's cleanup with raw backends
    for b in list(_raw_backends):
        b.close()
    return _cleanup_all_procs()
