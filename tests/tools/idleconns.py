#!/usr/bin/env python3
"""idleconns.py - open N keep-alive connections to 127.0.0.1:PORT, make one
request on each, then hold them all idle; on SIGUSR1 check that none was
closed, make a request on a random sample of them, close everything and
exit. Used by `make test-idle` (tests/idle/idle.py) and bench/idle/run.sh.

  idleconns.py --port P --conns N [--sources K] [--path /users/42]
               [--sample S] [--per-proc M] [--inflight F] [--timeout SECONDS]

The connections come from K source addresses 127.0.0.2 .. 127.0.0.(K+1),
so that N can pass the 28,000 ephemeral ports of one address, and from
ceil(N / M) processes (M = 15,000 by default), each under its own
RLIMIT_NOFILE (raised to the hard limit). Each process has at most F (200)
connections between connect and response at once: the server's listen
backlog is not the test, and a proxy needs a backend connection for each
request in flight (descriptors it must have beside the idle ones). Output,
one line each, flushed:

  READY opened=N ok=N failed=F seconds=S     all opened and answered once
  SAMPLE ok=S failed=F closed=C seconds=S    after SIGUSR1: C = connections
                                             the server had closed meanwhile
Exit status 0 when every connection opened, answered, stayed open and the
sample was answered; 1 otherwise; 2 on a usage error."""
import argparse
import errno
import os
import random
import resource
import selectors
import signal
import socket
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Client:
    """One connection: connect, send a request, read one response."""
    __slots__ = ("sock", "buf", "state", "need")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.state = "connect"
        self.need = -1      # body bytes still expected, -1 = head not complete


def response_done(cl):
    """Consume a complete response from cl.buf: its status, or None."""
    if cl.need < 0:
        end = cl.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = cl.buf[:end].decode("latin-1")
        status = int(head.split(" ", 2)[1])
        length = 0
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        cl.buf = cl.buf[end + 4:]
        cl.need = length
        cl.state = status
    if len(cl.buf) < cl.need:
        return None
    cl.buf = cl.buf[cl.need:]
    cl.need = -1
    return cl.state


def run_requests(clients, request, deadline):
    """Send <request> on every client and read one response each.
    Returns (ok, failed, closed)."""
    sel = selectors.DefaultSelector()
    ok = failed = closed = 0
    for cl in clients:
        try:
            cl.sock.send(request)
            cl.need = -1
            sel.register(cl.sock, selectors.EVENT_READ, cl)
        except OSError:
            closed += 1
    while sel.get_map() and time.time() < deadline:
        for key, _ in sel.select(0.5):
            cl = key.data
            try:
                data = cl.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed += 1
                sel.unregister(cl.sock)
                continue
            cl.buf += data
            st = response_done(cl)
            if st is not None:
                ok += st == 200
                failed += st != 200
                sel.unregister(cl.sock)
    failed += len(sel.get_map())
    sel.close()
    return ok, failed, closed


def open_all(n, port, sources, first_source, request, deadline, inflight):
    """Open <n> connections and make one request on each; returns
    (clients that got a 200, failures)."""
    sel = selectors.DefaultSelector()
    todo, live, done, failed, i = n, 0, [], 0, 0
    while (todo or live) and time.time() < deadline:
        while todo and live < inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind(("127.0.0.%d" % (first_source + i % sources), 0))
            i += 1
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                failed += 1
                todo -= 1
                continue
            cl = Client(s)
            sel.register(s, selectors.EVENT_WRITE, cl)
            todo -= 1
            live += 1
        for key, ev in sel.select(0.5):
            cl = key.data
            if cl.state == "connect":
                err = cl.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sel.unregister(cl.sock)
                    cl.sock.close()
                    failed += 1
                    live -= 1
                    continue
                try:
                    cl.sock.send(request)
                except OSError:
                    sel.unregister(cl.sock)
                    cl.sock.close()
                    failed += 1
                    live -= 1
                    continue
                cl.state = "response"
                sel.modify(cl.sock, selectors.EVENT_READ, cl)
                continue
            try:
                data = cl.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                cl.buf += data
                st = response_done(cl)
                if st is None:
                    continue
            sel.unregister(cl.sock)
            live -= 1
            if data and st == 200:
                done.append(cl)
            else:
                cl.sock.close()
                failed += 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    sel.close()
    return done, failed + todo


def count_closed(clients):
    """Connections the server closed while they were idle."""
    closed = 0
    for cl in clients:
        try:
            if cl.sock.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def child(idx, n, args, request, wfd, go_rfd):
    """Open and hold <n> connections; report on pipe <wfd>."""
    raise_nofile()
    deadline = time.time() + args.timeout
    t0 = time.time()
    clients, failed = open_all(n, args.port, args.sources, 2, request, deadline, args.inflight)
    os.write(wfd, ("%d %d %.2f\n" % (len(clients), failed, time.time() - t0)).encode())
    os.read(go_rfd, 1)                       # the parent got SIGUSR1
    closed = count_closed(clients)
    share = max(0, min(len(clients), args.sample_each))
    sample = random.Random(idx).sample(clients, share)
    t0 = time.time()
    ok, bad, closed2 = run_requests(sample, request, time.time() + 30)
    os.write(wfd, ("%d %d %d %.2f\n" % (ok, bad, closed + closed2, time.time() - t0)).encode())
    for cl in clients:
        cl.sock.close()
    os._exit(0)


def read_line(fd):
    buf = b""
    while not buf.endswith(b"\n"):
        d = os.read(fd, 256)
        if not d:
            return None
        buf += d
    return buf.decode().split()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--path", default="/users/42")
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--per-proc", type=int, default=15000)
    ap.add_argument("--inflight", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if args.conns < 1 or not 1 <= args.sources <= 250 or args.per_proc < 1 or args.inflight < 1:
        ap.error("bad --conns, --sources, --per-proc or --inflight")
    request = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % args.path).encode()
    nproc = (args.conns + args.per_proc - 1) // args.per_proc
    args.sample_each = (args.sample + nproc - 1) // nproc
    usr1 = []
    signal.signal(signal.SIGUSR1, lambda *a: usr1.append(1))
    kids = []
    for i in range(nproc):
        n = args.conns // nproc + (1 if i < args.conns % nproc else 0)
        r, w = os.pipe()
        gr, gw = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            os.close(r)
            os.close(gw)
            child(i, n, args, request, w, gr)
        os.close(w)
        os.close(gr)
        kids.append((pid, r, gw))
    opened = ok = failed = 0
    secs = 0.0
    for pid, r, gw in kids:
        f = read_line(r)
        if f is None:
            print("READY opened=0 ok=0 failed=%d seconds=0 (a client process died)" % args.conns,
                  flush=True)
            return 1
        ok += int(f[0])
        failed += int(f[1])
        secs = max(secs, float(f[2]))
    opened = ok + failed
    print("READY opened=%d ok=%d failed=%d seconds=%.2f" % (opened, ok, failed, secs), flush=True)
    while not usr1:
        time.sleep(0.05)
    sok = sbad = sclosed = 0
    ssecs = 0.0
    for pid, r, gw in kids:
        os.write(gw, b"g")
    for pid, r, gw in kids:
        f = read_line(r)
        if f is None:
            sbad += 1
            continue
        sok += int(f[0])
        sbad += int(f[1])
        sclosed += int(f[2])
        ssecs = max(ssecs, float(f[3]))
    for pid, r, gw in kids:
        os.waitpid(pid, 0)
    print("SAMPLE ok=%d failed=%d closed=%d seconds=%.2f" % (sok, sbad, sclosed, ssecs), flush=True)
    return 0 if failed == 0 and ok == args.conns and sbad == 0 and sclosed == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as e:
        if e.errno == errno.EMFILE:
            print("idleconns: out of descriptors: %s" % e, file=sys.stderr)
        raise
