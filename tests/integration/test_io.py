"""test_io.py - the event backends ([server] io): epoll serves like
io_uring, `auto` falls back to epoll with one warning where io_uring is
blocked, and `uring` refuses to start there with a clear error. "Blocked"
is real: tests/tools/noring.c runs ringfront under the seccomp filter that
container runtimes use (io_uring_setup fails with EPERM or ENOSYS). The
rest of the suite runs on epoll too with RF_IO=epoll (make test-epoll)."""
import os
import re
import signal
import subprocess
import time

from harness import (RINGFRONT, ROOT, Backend, Conn, Proc, Ringfront, build_request, check,
                     config, free_port, request, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
NORING_SRC = os.path.join(HERE, "..", "tools", "noring.c")
NORING = os.path.join(ROOT, "build", "noring")


def noring(err="EPERM"):
    """The command prefix that blocks io_uring_setup with <err>."""
    if not os.path.exists(NORING) or os.path.getmtime(NORING) < os.path.getmtime(NORING_SRC):
        os.makedirs(os.path.dirname(NORING), exist_ok=True)
        r = subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", NORING + ".tmp", NORING_SRC],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "cannot build noring: " + r.stderr)
        os.rename(NORING + ".tmp", NORING)
    r = subprocess.run([NORING, "-e", err, RINGFRONT, "-v"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0 and "io_uring: not available" in r.stdout,
          "the seccomp filter did not block io_uring: %r" % r)
    return [NORING, "-e", err]


def stats(port):
    r = request(port, "GET", "/stats")
    check(r.status == 200, r)
    return r.json()


def test_io_key():
    r = subprocess.run([RINGFRONT, "-k"], capture_output=True, text=True, timeout=30)
    check(re.search(r"^io = auto\s", r.stdout, re.M), r.stdout)
    b = Backend()
    ini = config([b.addr], server="io = kqueue")
    path = os.path.join("/tmp", "rf-test-io-%d.ini" % free_port())
    with open(path, "w") as f:
        f.write(ini)
    try:
        r = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 1 and "%s:5:" % path in r.stderr and "auto" in r.stderr and
              "epoll" in r.stderr, r)
    finally:
        os.unlink(path)


def test_epoll_backend_serves():
    """Explicit io = epoll, two workers: requests, pipelining, a large body
    (flow control), active health checks and /stats."""
    b1, b2 = Backend(), Backend()
    dead = "127.0.0.1:%d" % free_port()
    aport = free_port()
    ini = config([b1.addr, b2.addr, dead], workers=2,
                 server="io = epoll",
                 upstream="health_path = /health\nhealth_interval = 100ms\nfall = 1")
    ini = ini.replace("health_path =\n", "") + "\n[admin]\nlisten = 127.0.0.1:%d\n" % aport
    rf = Ringfront(ini)
    # the start line may be written a moment after the port answers
    check(wait_until(lambda: "io=epoll" in rf.output(), 2.0), rf.output())
    check(stats(aport)["io"] == "epoll")
    # the dead server is found by the checks, then never chosen
    check(wait_until(lambda: any(s["state"] == "down" for u in stats(aport)["upstreams"]
                                 for s in u["servers"]), 5.0), stats(aport))
    seen = set()
    for _ in range(8):
        r = request(rf.port, "GET", "/users/1")
        check(r.status == 200, r)
        seen.add(r.header("X-Handled-By"))
    check(len(seen) == 2, seen)
    c = Conn(rf.port)
    c.send(b"".join(build_request("GET", "/users/%d" % i) for i in range(20)))
    for i in range(20):
        r = c.read_response()
        check(r.status == 200 and ('"id":%d' % i) in r.body.decode(), r)
    r = request(rf.port, "GET", "/bytes/%d" % (8 << 20), timeout=30)
    check(r.status == 200 and len(r.body) == 8 << 20, (r.status, len(r.body)))
    c.close()
    rf.stop()


def test_auto_falls_back_to_epoll_when_blocked():
    for err in ("EPERM", "ENOSYS"):
        wrap = noring(err)
        b = Backend()
        rf = Ringfront(config([b.addr], workers=2, server="io = auto"), wrap=wrap)
        for _ in range(4):
            check(request(rf.port, "GET", "/users/1").status == 200)
        out = rf.output()
        warn = [ln for ln in out.splitlines() if "falling back to epoll" in ln]
        check(len(warn) == 1 and "level=warn" in warn[0], out)
        check("io=epoll" in out, out)
        rf.stop()


def test_uring_refuses_to_start_when_blocked():
    wrap = noring("EPERM")
    b = Backend()
    rf = Ringfront(config([b.addr], server="io = uring"), wait=False, wrap=wrap)
    rc = rf.p.wait(10)
    out = rf.output()
    check(rc == 1, "exit %s: %s" % (rc, out))
    check("io_uring is not usable" in out and "io = epoll" in out and
          "Operation not permitted" in out, out)
    check("ringfront started" not in out, out)
    Proc.stop(rf)
    # io = epoll there needs no io_uring at all, and says nothing about it
    rf = Ringfront(config([b.addr], server="io = epoll"), wrap=wrap)
    check(request(rf.port, "GET", "/users/1").status == 200)
    check("io_uring" not in rf.output(), rf.output())
    rf.stop()


def test_reload_keeps_the_backend():
    b = Backend()
    aport = free_port()
    ini = config([b.addr], server="io = epoll") + "\n[admin]\nlisten = 127.0.0.1:%d\n" % aport
    rf = Ringfront(ini)
    with open(rf.ini, "w") as f:
        f.write(ini.replace("io = epoll", "io = uring"))
    rf.signal(signal.SIGHUP)
    check(wait_until(lambda: "configuration reloaded" in rf.output() or
                     "configuration switched" in rf.output(), 5.0), rf.output())
    time.sleep(0.1)
    check('setting="[server] io"' in rf.output(), rf.output())
    check(stats(aport)["io"] == "epoll")
    check(request(rf.port, "GET", "/users/1").status == 200)
    rf.stop()


def test_receive_buffers_run_out_and_come_back():
    """64 receive buffers, 40 clients each fetching 1 MB and reading nothing
    for a while: the buffers run out (the multishot receives end with
    ENOBUFS and wait), then every byte arrives once the clients read. On
    whichever backend the suite runs (RF_IO)."""
    import socket
    b = Backend()
    rf = Ringfront(config([b.addr], server="recv_buffers = 64\nrecv_buffer_size = 4k"))
    size = 1 << 20
    socks = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", rf.port), timeout=20)
        s.sendall(build_request("GET", "/bytes/%d" % size))
        socks.append(s)
    time.sleep(1.0)
    check(wait_until(lambda: "receive buffers exhausted" in rf.output(), 3.0), rf.output())
    for s in socks:
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, body = got.split(b"\r\n\r\n", 1)
        check(b" 200 " in head.split(b"\r\n")[0], head)
        n = len(body)
        while n < size:
            chunk = s.recv(1 << 18)
            check(chunk, "connection closed after %d of %d bytes" % (n, size))
            n += len(chunk)
        check(n == size, n)
        s.close()
    check(request(rf.port, "GET", "/users/1").status == 200)
    rf.stop()


def metric_sum(port, name):
    """The sum over workers of the counter ringfront_<name>."""
    body = request(port, "GET", "/metrics").body.decode()
    vals = [float(m) for m in re.findall(r"^ringfront_%s\{[^}]*\} (\S+)$" % name, body, re.M)]
    check(vals, "no ringfront_%s in /metrics" % name)
    return sum(vals)


def test_batched_waits():
    """batch_wait_us: a lone client never meets a batched wait; bursts of
    64 pipelined connections make the worker batch, and every request of
    every burst is answered in order. io = uring only: epoll counts its
    waits but has no batching."""
    b = Backend()
    aport = free_port()
    ini = config([b.addr], server="io = uring\nbatch_wait_us = 200")
    rf = Ringfront(ini + "\n[admin]\nlisten = 127.0.0.1:%d\n" % aport)
    c = Conn(rf.port)
    for i in range(30):
        c.send(build_request("GET", "/users/%d" % i))
        r = c.read_response()
        check(r.status == 200 and b'"id":%d' % i in r.body, r)
    c.close()
    check(metric_sum(aport, "io_batched_waits_total") == 0,
          "a lone client met a batched wait")
    check(metric_sum(aport, "io_waits_total") >= 30)
    conns = [Conn(rf.port) for _ in range(64)]
    for burst in range(20):
        for n, c in enumerate(conns):
            c.send(b"".join(build_request("GET", "/users/%d" % (n * 4 + k)) for k in range(4)))
        for n, c in enumerate(conns):
            for k in range(4):
                r = c.read_response()
                check(r.status == 200 and b'"id":%d,' % (n * 4 + k) in r.body,
                      "burst %d conn %d request %d: %r" % (burst, n, k, r))
        if metric_sum(aport, "io_batched_waits_total") > 0:
            break
    check(metric_sum(aport, "io_batched_waits_total") > 0,
          "20 bursts of 256 requests never made the worker batch")
    for c in conns:
        c.close()
    rf.stop()
    b.stop()
