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
RINGFRONT = os.path.join(ROOT, "ringfront")
DEMO = os.path.join(ROOT, "build", "demo-backend")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "ThreadSanitizer", "UndefinedBehaviorSanitizer")

_procs = []


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


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TestFailure("process exited early: %s" % proc.output())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TestFailure("port %d did not open" % port)


class Proc:
    """A child process whose stderr goes to a file, stopped by PID."""

    def __init__(self, argv, env=None):
        self.errf = tempfile.NamedTemporaryFile(prefix="rf-test-", suffix=".log", delete=False)
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


class Ringfront(Proc):
    def __init__(self, ini, wait=True):
        self.port = None
        fd, self.ini = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
        with os.fdopen(fd, "w") as f:
            f.write(ini)
        for line in ini.splitlines():
            if line.strip().startswith("listen") and self.port is None:
                self.port = int(line.split("=")[1].split(";")[0].strip().split()[0].rsplit(":", 1)[1])
        super().__init__([RINGFRONT, "-c", self.ini])
        if wait:
            wait_port(self.port, proc=self)

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
    return "\n".join(lines) + "\n"


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
