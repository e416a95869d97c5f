"""test_abuse.py - clients that try to exhaust ringfront: 5,000 slowloris
connections beside full-speed wrk traffic, connection floods past
max_connections, an accept storm under a 64-descriptor limit (EMFILE),
floods of oversized heads (431) and bodies (413), and many pipelining
clients that do not read (bounded memory). In every case the process keeps
serving, does not spin, and its RSS stays within the bound stated in the
test; its descriptors come back once the abuse stops.

Each test prints the figures it measured (they show in run.py's output);
tests/README.md keeps the latest."""
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import (RINGFRONT, Backend, Conn, Proc, Ringfront, build_request, check,
                     config, is_sanitized, proc_rss_kb, raw_exchange, request, wait_port,
                     wait_until, with_io, _tempfiles)

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "tools")
sys.path.insert(0, TOOLS)
from procstat import cpu_seconds, fd_census  # noqa: E402


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wrk(port, seconds, path="/users/1", conns=16, threads=1):
    """Run wrk; returns (requests/s, non-2xx count, socket error text)."""
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, timeout=seconds + 20).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    check(m, "wrk output: %s" % out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockerr = re.search(r"Socket errors: .*", out)
    return float(m.group(1)), int(non2xx.group(1)) if non2xx else 0, \
        sockerr.group(0) if sockerr else ""


def slowloris_tool():
    """build/slowloris, compiled from tests/tools/slowloris.c when stale."""
    src = os.path.join(TOOLS, "slowloris.c")
    exe = os.path.join(HERE, "..", "..", "build", "slowloris")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        r = subprocess.run(["cc", "-O2", "-Wall", "-o", exe + ".tmp", src],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "cannot build slowloris: " + r.stderr)
        os.rename(exe + ".tmp", exe)
    return exe


def census(rf):
    return fd_census(rf.pid, [rf.port])


def wait_clients_gone(rf, timeout=5.0):
    ok = wait_until(lambda: census(rf)["client"] == 0 and census(rf)["dead"] == 0, timeout, 0.05)
    check(ok, "client descriptors left after the abuse: %r" % census(rf))


def rss_bound_kb(pid, release_kb):
    """A bound on RSS growth: ASan's shadow and quarantine need more."""
    return release_kb * 3 if is_sanitized(pid) else release_kb


# ---------------------------------------------------------------------------

def slowloris_round(rf, seconds=3):
    """One attack window: 5000 slow connections (reopened as the server
    closes them) while wrk measures; returns (req/s, wrk non-2xx, wrk
    socket errors, slow connections held when wrk started, ringfront CPU
    seconds per second, the helper's JSON report)."""
    sl = subprocess.Popen([slowloris_tool(), str(rf.port), "5000", str(seconds + 3), "1000"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = sl.stdout.readline()
        check(line.startswith("ready"), "slowloris did not get its connections: %r" % line)
        # "ready" means 5000 connects were issued; wait for ringfront to
        # have accepted them (a busy machine drains the backlog slower).
        # The most seen counts: on a loaded machine the 408s at
        # header_timeout and the reconnects come in waves, and one sample
        # taken between two waves once saw 4.
        seen = [0]

        def accepted():
            seen[0] = max(seen[0], census(rf)["client"])
            return seen[0] >= 4900
        wait_until(accepted, 5.0, 0.1)
        held = seen[0]
        cpu0, t0 = cpu_seconds(rf.pid), time.time()
        rps, non2xx, err = wrk(rf.port, seconds)
        cpu = (cpu_seconds(rf.pid) - cpu0) / (time.time() - t0)
        out = sl.communicate(timeout=30)[0]
    finally:
        if sl.poll() is None:
            sl.kill()
            sl.wait()
    return rps, non2xx, err, held, cpu, json.loads(out.strip().splitlines()[-1])


def test_slowloris_5000_beside_wrk():
    """5,000 connections trickle a request head (one byte a second, and
    reopen when closed) while wrk runs at full speed. Legitimate throughput
    is measured against the undisturbed figure (the mean of a run before
    and one after the attack, so drift on a shared machine cancels out;
    the best of two attack rounds counts), and every slow connection is
    closed with 408 at header_timeout (2 s)."""
    raise_nofile(16384)
    b = Backend()
    rf = Ringfront(config([b.addr], workers=1,
                          server="max_connections = 12000\nheader_timeout = 2s"))
    check(request(rf.port, "GET", "/users/1").status == 200)
    wrk(rf.port, 1)                                     # warm-up
    rounds = []
    for attempt in range(2):
        before, non2xx, err = wrk(rf.port, 3)
        check(non2xx == 0 and not err, "undisturbed run had errors: %d %s" % (non2xx, err))
        rps, non2xx, err, held, cpu, stats = slowloris_round(rf)
        check(non2xx == 0 and not err, "legitimate traffic had errors: %d %s" % (non2xx, err))
        wait_clients_gone(rf)
        after, _, _ = wrk(rf.port, 3)
        ratio = rps / ((before + after) / 2)
        rounds.append(ratio)
        print("    slowloris round %d: %.0f req/s before, %.0f beside 5000 slow conns, %.0f after "
              "(ratio %.2f); %d held; ringfront CPU %.2f s/s; %r"
              % (attempt + 1, before, rps, after, ratio, held, cpu, stats))
        check(held >= 4500, "only %d slow connections were held open" % held)
        # every slow connection is closed at the header timeout (2 s), not
        # before, and not much after (the timer wheel's tick)
        lt = stats["lifetime"]
        check(stats["closed_by_server"] >= 5000, "server closed only %d" % stats["closed_by_server"])
        check(lt["min"] >= 1.8, "a slow connection was closed after %.2fs" % lt["min"])
        check(lt["p99"] <= 3.5, "slow connections closed after up to %.2fs (p99)" % lt["p99"])
        check(set(stats["statuses"]) == {"408"}, stats["statuses"])
        if ratio >= 0.8:
            break
    # The throughput share is a figure, not an assertion: make test holds
    # no timing thresholds (a busy machine moves it); make soak and
    # tests/README.md report it. Legitimate requests must still succeed.
    print("    slowloris: throughput kept %s of the undisturbed figure"
          % ", ".join("%.0f%%" % (100 * r) for r in rounds))
    check(max(rounds) > 0.0, "no legitimate request got through during the attack")
    check(request(rf.port, "GET", "/users/2").status == 200)
    rf.stop()


def test_connection_flood_beyond_max_connections():
    raise_nofile(8192)
    b = Backend()
    rf = Ringfront(config([b.addr], workers=2, server="max_connections = 300"))
    check(request(rf.port, "GET", "/users/1").status == 200)
    time.sleep(0.2)
    rss0 = proc_rss_kb(rf.pid)
    flood = []
    for _ in range(3000):
        try:
            s = socket.create_connection(("127.0.0.1", rf.port), timeout=2)
            flood.append(s)
        except OSError:
            pass
    time.sleep(0.5)
    # at most max_connections are kept; the rest were closed at once
    held = census(rf)["client"]
    check(held <= 300, "%d client connections held with max_connections = 300" % held)
    alive = 0
    for s in flood:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                continue
        except BlockingIOError:
            alive += 1
        except OSError:
            continue
    check(250 <= alive <= 300, "%d flood connections alive" % alive)
    # the flood is held: no spinning, bounded memory
    cpu0 = cpu_seconds(rf.pid)
    time.sleep(1.0)
    cpu = cpu_seconds(rf.pid) - cpu0
    rss1 = proc_rss_kb(rf.pid)
    check(cpu < 0.3, "ringfront used %.2fs CPU in 1s while the flood was held" % cpu)
    bound = rss_bound_kb(rf.pid, 32 * 1024)
    check(rss1 - rss0 < bound, "RSS grew %d kB under the flood" % (rss1 - rss0))
    for s in flood:
        s.close()
    wait_clients_gone(rf)
    # every slot is free again
    conns = [Conn(rf.port) for _ in range(250)]
    for i, c in enumerate(conns):
        c.send(build_request("GET", "/users/%d" % i))
    for i, c in enumerate(conns):
        r = c.read_response()
        check(r.status == 200 and r.json()["id"] == i, (i, r))
        c.close()
    print("    flood: 3000 connects, %d held (max 300), %.2fs CPU/s held, RSS %d -> %d kB"
          % (held, cpu, rss0, rss1))
    rf.stop()


class LimitedRingfront(Ringfront):
    """ringfront started under `prlimit --nofile=N:N` (soft and hard: it
    raises its soft limit to the hard one)."""

    def __init__(self, ini, nofile):
        self.port = None
        ini = with_io(ini)
        fd, self.ini = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
        _tempfiles.append(self.ini)
        with os.fdopen(fd, "w") as f:
            f.write(ini)
        for line in ini.splitlines():
            if line.strip().startswith("listen") and self.port is None:
                self.port = int(line.split("=")[1].strip().split()[0].rsplit(":", 1)[1])
        Proc.__init__(self, ["prlimit", "--nofile=%d:%d" % (nofile, nofile), RINGFRONT,
                             "-c", self.ini])
        wait_port(self.port, proc=self)


def test_emfile_accept_storm_low_ulimit():
    raise_nofile(4096)
    b = Backend()
    rf = LimitedRingfront(config([b.addr], workers=1, server="max_connections = 1000"), 64)
    check(request(rf.port, "GET", "/users/1").status == 200)
    time.sleep(0.2)
    base = census(rf)
    flood = []
    for _ in range(200):
        try:
            flood.append(socket.create_connection(("127.0.0.1", rf.port), timeout=2))
        except OSError:
            pass
    time.sleep(0.5)
    # out of descriptors with connections still queued: it must back off,
    # not spin on accept
    cpu0 = cpu_seconds(rf.pid)
    time.sleep(1.5)
    cpu = cpu_seconds(rf.pid) - cpu0
    held = census(rf)
    check(rf.poll() is None, "ringfront died:\n" + rf.output()[-2000:])
    check(cpu < 0.3, "ringfront used %.2fs CPU in 1.5s at EMFILE" % cpu)
    check(held["total"] <= 64, held)
    # the accepted ones still get answers (or a clean error if no descriptor
    # is left for a backend connection)
    for s in flood:
        s.close()
    wait_clients_gone(rf, timeout=8)
    # descriptors are back: new connections are served again
    t0 = time.time()
    ok = wait_until(lambda: _try_get(rf.port) == 200, 5.0, 0.1)
    check(ok, "not serving after the storm: %r" % census(rf))
    for i in range(20):
        check(request(rf.port, "GET", "/users/%d" % i).status == 200)
    out = rf.output()
    check("backing off" in out, "no back-off warning logged:\n" + out[-1500:])
    print("    EMFILE: %d fds held at the limit, %.2fs CPU in 1.5s, serving again after %.2fs"
          % (held["total"], cpu, time.time() - t0))
    check(census(rf)["other"] == base["other"])
    rf.stop()


def _try_get(port):
    try:
        return request(port, "GET", "/users/1", timeout=2).status
    except (OSError, EOFError, ValueError):
        return None


def test_header_flood_431_bounded_memory():
    b = Backend()
    rf = Ringfront(config([b.addr], workers=1, server="max_header_size = 8k"))
    check(request(rf.port, "GET", "/users/1").status == 200)
    time.sleep(0.2)
    rss0 = proc_rss_kb(rf.pid)
    big = b"GET /users/1 HTTP/1.1\r\nHost: x\r\n" + b"X-Flood: " + b"h" * 70000 + b"\r\n\r\n"
    many = b"GET /users/1 HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-F%d: v\r\n" % i for i in range(150)) + b"\r\n"
    endless = b"GET /users/1 HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000
    statuses = {}
    lock = threading.Lock()

    def client(k):
        for i in range(15):
            payload = (big, many, endless)[(k + i) % 3]
            out = raw_exchange(rf.port, payload, timeout=5)
            st = out[9:12].decode(errors="replace") if out.startswith(b"HTTP/1.1 ") else repr(out[:20])
            with lock:
                statuses[st] = statuses.get(st, 0) + 1

    peak = [rss0]
    ts = [threading.Thread(target=client, args=(k,)) for k in range(40)]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        peak[0] = max(peak[0], proc_rss_kb(rf.pid))
        check(request(rf.port, "GET", "/users/7", timeout=5).status == 200,
              "normal traffic refused during the flood")
        time.sleep(0.05)
    for t in ts:
        t.join()
    check(statuses == {"431": 600}, "answers to 600 oversized heads: %r" % statuses)
    growth = peak[0] - rss0
    bound = rss_bound_kb(rf.pid, 24 * 1024)
    check(growth < bound, "RSS grew %d kB under the header flood (bound %d)" % (growth, bound))
    wait_clients_gone(rf)
    print("    header flood: 600 x 431, RSS %d -> peak %d kB" % (rss0, peak[0]))
    rf.stop()


def oversized_upload(port, chunked, chunk, limit=4 << 20, wait_close=True):
    """POST a body far over max_body_size, pushing body bytes until the
    server answers; returns the status it answered with, or what went
    wrong ("eof", "reset") when no status line arrived. A send error does
    not end the attempt: the answer may already be waiting to be read.
    <wait_close>: read on until the server closes (else close at once
    after the status line, as a client that has its answer may)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if chunked:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    else:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n")
        piece = chunk
    got, sent, why = b"", 0, "no answer"
    s.settimeout(0.01)
    while sent < limit and not got:
        try:
            s.sendall(piece)
            sent += len(piece)
        except socket.timeout:
            pass
        except OSError:
            break               # the server stopped reading: go read the answer
        try:
            got = s.recv(4096)
            if not got:
                why = "eof"
                break
        except socket.timeout:
            pass
        except OSError:
            why = "reset"
            break
    s.settimeout(5)
    try:
        while b"\r\n" not in got:
            d = s.recv(4096)
            if not d:
                why = "eof"
                break
            got += d
        while wait_close and s.recv(65536):
            pass
    except OSError:
        if not got:
            why = "reset"
    s.close()
    if got.startswith(b"HTTP/1.1 "):
        return got[9:12].decode(errors="replace")
    return why


def test_oversized_body_flood_413_bounded_memory():
    b = Backend()
    rf = Ringfront(config([b.addr], workers=1, server="max_body_size = 64k"))
    check(request(rf.port, "POST", "/echo", body=b"x" * 60000).status == 200)
    time.sleep(0.2)
    rss0 = proc_rss_kb(rf.pid)
    statuses = {}
    lock = threading.Lock()
    chunk = b"z" * 65536

    def client(k):
        for i in range(6):
            st = oversized_upload(rf.port, chunked=bool((k + i) % 2 == 0), chunk=chunk)
            st = ("chunked " if (k + i) % 2 == 0 else "length ") + st
            with lock:
                statuses[st] = statuses.get(st, 0) + 1

    peak = rss0
    ts = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        peak = max(peak, proc_rss_kb(rf.pid))
        time.sleep(0.05)
    for t in ts:
        t.join()
    check(statuses == {"length 413": 60, "chunked 413": 60},
          "answers to 120 oversized bodies: %r" % statuses)
    growth = peak - rss0
    bound = rss_bound_kb(rf.pid, 24 * 1024)
    check(growth < bound, "RSS grew %d kB under the body flood (bound %d)" % (growth, bound))
    check(request(rf.port, "POST", "/echo", body=b"y" * 1000).status == 200)
    wait_clients_gone(rf)
    print("    body flood: 120 x 413, RSS %d -> peak %d kB" % (rss0, peak))
    rf.stop()


def test_many_pipelining_clients_that_do_not_read():
    raise_nofile(4096)
    b = Backend()
    rf = Ringfront(config([b.addr], workers=1))
    check(request(rf.port, "GET", "/users/1").status == 200)
    time.sleep(0.2)
    rss0 = proc_rss_kb(rf.pid)
    nclients, depth, size = 30, 400, 16000
    batch = b"".join(build_request("GET", "/bytes/%d" % size) for _ in range(depth))
    socks = []
    for _ in range(nclients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.connect(("127.0.0.1", rf.port))
        s.settimeout(0.2)
        try:
            s.sendall(batch)       # ~15 KB of requests, 6.4 MB of answers each
        except socket.timeout:
            pass
        socks.append(s)
    # nobody reads for 2 s: the answers back up into ringfront
    peak = rss0
    t_end = time.time() + 2.0
    while time.time() < t_end:
        peak = max(peak, proc_rss_kb(rf.pid))
        time.sleep(0.05)
    # still serving others meanwhile
    check(request(rf.port, "GET", "/users/3", timeout=5).status == 200)
    # now read everything: all answers arrive, in order
    total = [0]
    lock = threading.Lock()

    def drain(s):
        c = Conn.__new__(Conn)
        c.sock, c.buf = s, b""
        s.settimeout(20)
        n = 0
        for _ in range(depth):
            r = c.read_response()
            if r.status != 200 or len(r.body) != size:
                break
            n += 1
        with lock:
            total[0] += n
        s.close()

    ts = [threading.Thread(target=drain, args=(s,)) for s in socks]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        peak = max(peak, proc_rss_kb(rf.pid))
        time.sleep(0.05)
    for t in ts:
        t.join()
    check(total[0] == nclients * depth, "%d of %d pipelined answers" % (total[0], nclients * depth))
    growth = peak - rss0
    bound = rss_bound_kb(rf.pid, 48 * 1024)
    check(growth < bound, "RSS grew %d kB with %d stalled pipelining clients (bound %d)"
          % (growth, nclients, bound))
    wait_clients_gone(rf)
    print("    pipelining: %d clients x %d x %d B unread, RSS %d -> peak %d kB (+%d)"
          % (nclients, depth, size, rss0, peak, growth))
    rf.stop()
