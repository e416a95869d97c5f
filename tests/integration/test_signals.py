"""test_signals.py - SIGTERM at random moments, many times: during start-up
(before and after the signal mask is set), right after the workers start,
idle (no timers armed: the workers wait without a timeout), idle with open
keep-alive connections, under load, just after a SIGHUP, and twice in a
row. Every run must stop within shutdown_timeout + 1 s, exit 0 once main()
has started (the stop is graceful), and leave no sanitizer report.

RF_SIGNAL_RUNS multiplies the number of runs (default 1) for a longer
stress by hand: RF_SIGNAL_RUNS=20 python3 tests/integration/run.py signals
RF_SIGNAL_SEED fixes the random choices to replay a failing run."""
import os
import random
import signal
import socket
import threading
import time

from harness import (Backend, Proc, Ringfront, build_request, check, config,
                     is_sanitized, wait_port)

SHUTDOWN_S = 2.0
BOUND_S = SHUTDOWN_S + 1.0
SCALE = max(1, int(os.environ.get("RF_SIGNAL_RUNS", "1")))
SEED = int(os.environ.get("RF_SIGNAL_SEED", "0")) or random.randrange(1, 1 << 30)


def _ini(backend, workers, extra=""):
    return config([backend.addr], workers=workers,
                  server="shutdown_timeout = %dms\n%s" % (SHUTDOWN_S * 1000, extra))


class Clients:
    """Keep-alive clients sending GETs in a loop until stopped; every error
    (the stop closing them) just ends a connection and starts another."""

    def __init__(self, port, n, close_every=0):
        self.port = port
        self.stop = threading.Event()
        self.done = 0
        self.threads = [threading.Thread(target=self._run, args=(close_every,), daemon=True)
                        for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, close_every):
        req = build_request("GET", "/")
        closing = build_request("GET", "/", {"Connection": "close"})
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                time.sleep(0.005)
                continue
            try:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    last = close_every and i % close_every == 0
                    s.sendall(closing if last else req)
                    got = b""
                    while b"\r\n\r\n" not in got:
                        b = s.recv(65536)
                        if not b:
                            raise OSError("closed")
                        got += b
                    self.done += 1
                    if last:
                        break
            except OSError:
                pass
            finally:
                s.close()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)


def _stop_and_judge(rf, what, t_sig, rng_desc):
    try:
        rf.p.wait(BOUND_S + 10)
    except Exception:   # noqa: BLE001 - judged below
        pass
    took = time.time() - t_sig
    rc = rf.p.poll()
    out = rf.output()
    Proc.stop(rf, timeout=2)        # SIGKILL if it hung; unregisters it
    check(rc is not None and took <= BOUND_S,
          "%s: still running %.2fs after SIGTERM (bound %.1fs, %s):\n%s"
          % (what, took, BOUND_S, rng_desc, out[-3000:]))
    report = rf.sanitizer_report()
    check(report is None, "%s: sanitizer report:\n%s" % (what, (report or "")[-4000:]))
    # a worker learnt of the stop from its periodic wake-up, not the eventfd
    check("without its wake-up" not in out, "%s: a wake-up was lost (%s):\n%s"
          % (what, rng_desc, out[-3000:]))
    # Killed by the signal's default action only before main() blocked it.
    if rc == -signal.SIGTERM:
        check(out.strip() == "", "%s: died of SIGTERM after it had started (%s):\n%s"
              % (what, rng_desc, out[-3000:]))
    else:
        check(rc == 0, "%s: exit status %s (%s):\n%s" % (what, rc, rng_desc, out[-3000:]))
    return took, rc


def _summary(name, took, rcs):
    took.sort()
    print("    %s: %d runs, stop time median %.3fs max %.3fs, %d killed before main() "
          "(seed %d)" % (name, len(took), took[len(took) // 2], took[-1],
                         sum(1 for r in rcs if r != 0), SEED))


def test_sigterm_during_startup():
    """The signal lands anywhere from exec to the first loop iterations."""
    rng = random.Random(SEED)
    b = Backend()
    took, rcs = [], []
    slow = 4 if is_sanitized() else 1
    for i in range(40 * SCALE):
        # start-up takes about a millisecond: most signals land inside it
        delay = rng.choice((0.0, rng.uniform(0, 0.002 * slow), rng.uniform(0, 0.04 * slow)))
        rf = Ringfront(_ini(b, rng.choice((1, 2))), wait=False)
        end = time.perf_counter() + delay
        while time.perf_counter() < end:    # sleep() is too coarse here
            pass
        t = time.time()
        os.kill(rf.pid, signal.SIGTERM)
        d, rc = _stop_and_judge(rf, "start-up run %d" % i, t, "delay %.4fs" % delay)
        took.append(d)
        rcs.append(rc)
    _summary("start-up", took, rcs)


def test_sigterm_while_starting_is_graceful():
    """Deterministic start-up case: the configuration file is a FIFO, so
    ringfront waits in its start-up until the test writes it. A SIGTERM
    sent meanwhile must wait for the start to finish and then stop the
    server gracefully (exit 0, "stopping" logged), not kill it half
    started."""
    import tempfile
    from harness import RINGFRONT
    b = Backend()
    d = tempfile.mkdtemp(prefix="rf-test-")
    fifo = os.path.join(d, "ringfront.ini")
    os.mkfifo(fifo)
    try:
        p = Proc([RINGFRONT, "-c", fifo])
        time.sleep(0.3)             # blocked opening the FIFO
        os.kill(p.pid, signal.SIGTERM)
        time.sleep(0.1)
        check(p.poll() is None, "died of the early SIGTERM: %s" % p.poll())
        with open(fifo, "w") as f:
            f.write(_ini(b, 2))
        t = time.time()
        try:
            p.p.wait(BOUND_S + 5)
        except Exception:   # noqa: BLE001
            pass
        took = time.time() - t
        out = p.output()
        rc = Proc.stop(p, timeout=2)
    finally:
        os.unlink(fifo)
        os.rmdir(d)
    check(rc == 0 and took <= BOUND_S, "exit %s after %.2fs:\n%s" % (rc, took, out[-2000:]))
    check("ringfront started" in out and "msg=\"stopping\" signal=15" in out, out[-2000:])


def test_sigterm_idle_and_with_idle_connections():
    """Idle: no connection, no health check, no cache, no access log, so
    no timer is armed and each worker waits for a completion without a
    timeout; only the stop's wake can end that wait."""
    rng = random.Random(SEED + 1)
    b = Backend()
    took, rcs = [], []
    for i in range(24 * SCALE):
        rf = Ringfront(_ini(b, rng.choice((1, 2))))
        conns = []
        if i % 2:
            # keep-alive connections that each had one response, then idle
            for _ in range(rng.randrange(1, 20)):
                s = socket.create_connection(("127.0.0.1", rf.port), timeout=5)
                s.sendall(build_request("GET", "/"))
                s.recv(65536)
                conns.append(s)
        delay = rng.uniform(0, 0.4)
        time.sleep(delay)
        t = time.time()
        os.kill(rf.pid, signal.SIGTERM)
        d, rc = _stop_and_judge(rf, "idle run %d (%d conns)" % (i, len(conns)), t,
                                "delay %.3fs" % delay)
        for s in conns:
            s.close()
        took.append(d)
        rcs.append(rc)
    _summary("idle", took, rcs)


def test_sigterm_under_load():
    rng = random.Random(SEED + 2)
    b = Backend()
    took, rcs = [], []
    for i in range(16 * SCALE):
        rf = Ringfront(_ini(b, rng.choice((1, 2))))
        cl = Clients(rf.port, rng.randrange(1, 6), close_every=rng.choice((0, 1, 5)))
        delay = rng.uniform(0.05, 0.4)
        time.sleep(delay)
        t = time.time()
        os.kill(rf.pid, signal.SIGTERM)
        try:
            d, rc = _stop_and_judge(rf, "load run %d" % i, t, "delay %.3fs" % delay)
        finally:
            cl.close()
        check(cl.done > 0, "load run %d: no request was served" % i)
        took.append(d)
        rcs.append(rc)
    _summary("under load", took, rcs)


def test_sigterm_under_wrk():
    """The benchmark's shape: wrk at full speed over pooled backend links
    (keepalive = 256), SIGTERM during the run, as it ends or just after."""
    import shutil
    import subprocess
    if not shutil.which("wrk"):
        print("    wrk not installed: skipped")
        return
    rng = random.Random(SEED + 4)
    b = Backend()
    took, rcs = [], []
    for i in range(6 * SCALE):
        rf = Ringfront(_ini(b, rng.choice((1, 2)), "max_connections = 4000").replace(
            "health_path =", "health_path =\nkeepalive = 256"))
        conns = rng.choice((16, 64, 400))
        wrk = subprocess.Popen(["wrk", "-t1", "-c%d" % conns, "-d2s", "--timeout", "2s",
                                "http://127.0.0.1:%d/" % rf.port],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.3, 2.8)
        time.sleep(delay)
        t = time.time()
        os.kill(rf.pid, signal.SIGTERM)
        try:
            d, rc = _stop_and_judge(rf, "wrk run %d (%d conns)" % (i, conns), t,
                                    "delay %.3fs" % delay)
        finally:
            wrk.kill()
            wrk.wait()
        took.append(d)
        rcs.append(rc)
    _summary("under wrk", took, rcs)


def test_sigterm_after_sighup_and_twice():
    """SIGHUP then SIGTERM a moment later (the reload may still run), and
    two SIGTERMs back to back (the second lands during the graceful stop)."""
    rng = random.Random(SEED + 3)
    b = Backend()
    took, rcs = [], []
    for i in range(16 * SCALE):
        rf = Ringfront(_ini(b, rng.choice((1, 2))))
        cl = Clients(rf.port, 2) if i % 4 == 0 else None
        gap = rng.uniform(0, 0.03)
        first = signal.SIGHUP if i % 2 == 0 else signal.SIGTERM
        os.kill(rf.pid, first)
        time.sleep(gap)
        t = time.time()
        os.kill(rf.pid, signal.SIGTERM)
        try:
            d, rc = _stop_and_judge(rf, "run %d (%s then TERM)" % (i, first.name), t,
                                    "gap %.4fs" % gap)
        finally:
            if cl:
                cl.close()
        took.append(d)
        rcs.append(rc)
    _summary("after HUP / twice", took, rcs)


def test_second_sigterm_stops_at_once():
    """A client holds a request open on a backend that never answers: the
    first SIGTERM starts a graceful stop that would wait shutdown_timeout
    for it; a second SIGTERM (or SIGINT) closes everything at once."""
    import socket as _s
    lst = _s.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    port = lst.getsockname()[1]
    ini = config(["127.0.0.1:%d" % port], workers=2,
                 server="shutdown_timeout = 30s", upstream="response_timeout = 60s")
    rf = Ringfront(ini)
    c = socket.create_connection(("127.0.0.1", rf.port), timeout=5)
    c.sendall(build_request("GET", "/"))
    lst.settimeout(5)
    held, _ = lst.accept()          # the request reached the silent backend
    os.kill(rf.pid, signal.SIGTERM)
    time.sleep(0.3)
    check(rf.poll() is None, "the graceful stop did not wait for the request in flight")
    t = time.time()
    os.kill(rf.pid, signal.SIGTERM)
    try:
        rf.p.wait(5)
    except Exception:   # noqa: BLE001
        pass
    took = time.time() - t
    out = rf.output()
    rc = Proc.stop(rf, timeout=2)
    held.close()
    lst.close()
    c.close()
    check(took < 2.0, "a second SIGTERM did not stop it at once (%.2fs):\n%s" % (took, out[-2000:]))
    check(rc == 0, "exit status %s:\n%s" % (rc, out[-2000:]))
    check(rf.sanitizer_report() is None, "sanitizer report:\n" + (rf.sanitizer_report() or "")[-4000:])
    print("    second SIGTERM: stopped %.3fs after it" % took)
