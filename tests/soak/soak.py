#!/usr/bin/env python3
"""soak.py - run ringfront (the ASan build) under mixed traffic for
SOAK_TIME seconds, then report and judge. Started by tests/soak/soak.sh
(`make soak`), which builds build/debug/ringfront first.

Traffic, all at once:
  - wrk (tests/tools/status.lua): proxied GETs over several paths, counted
    by status code and socket error;
  - loadgen (tests/tools/loadgen.py): a few strict clients that parse every
    response and count failures by class (closed, malformed, timeout);
  - an admin loop: GET /stats and /metrics on the [admin] listener;
  - malformed and abusive requests: bad framing, oversized heads and
    bodies, slow heads, each must get its 4xx;
  - backend restarts: every SOAK_RESTART seconds one demo backend is
    killed (SIGKILL) and started again on the same port;
  - hooks for the features that land later, each on when the binary
    accepts its configuration (`ringfront -t`) or SOAK_FEATURES names it:
      reload     SIGHUP every 30 s (the file rewritten with another weight)
      cache      a [cache] section, cacheable /cache/ paths in the mix, and
                 RESP traffic (SET/GET/DEL) on its listen port
      ratelimit  a [ratelimit] section with a generous limit and the line
                 protocol exercised on its listen port

Every 10 s: RSS, the part of it in the workers' receive-buffer rings,
descriptor census, CPU. The verdict fails on a crash, a sanitizer report,
leaked descriptors (the census after the traffic stops against the one
after warm-up), or growth over SOAK_RSS_GROWTH (20%) between the end of
warm-up and the end of the RSS outside the rings. The rings are mapped at
start and their pages touched one by one as receives land in them (a FIFO
ring cycles through every buffer; a larger receive touches more of one),
so their RSS climbs for hours towards recv_buffers x recv_buffer_size per
worker: bounded, and no leak; the report shows it apart.

Environment: SOAK_TIME (600), SOAK_WARMUP (SOAK_TIME/3),
SOAK_RESTART (20), SOAK_FEATURES (auto | comma list | none),
SOAK_REPORT (a file to write the report to as well), RINGFRONT
(build/debug/ringfront)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Conn, free_port, port_opens, raw_exchange, request  # noqa: E402
from loadgen import Load  # noqa: E402
from procstat import cpu_seconds, fd_census, rss_kb  # noqa: E402

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "ThreadSanitizer")
DEMO = os.path.join(ROOT, "build", "demo-backend")


def env_num(name, default):
    v = os.environ.get(name, "")
    return float(v) if v else default


SOAK_TIME = env_num("SOAK_TIME", 600)
# The first third: under ASan, RSS settles only after a few minutes (the
# allocator's size classes, the quarantine and the cache fill up); a 600 s
# run reached its plateau at ~270 s.
SOAK_WARMUP = env_num("SOAK_WARMUP", SOAK_TIME / 3)
SOAK_RESTART = env_num("SOAK_RESTART", 20)
RSS_GROWTH = env_num("SOAK_RSS_GROWTH", 0.20)
RINGFRONT = os.environ.get("RINGFRONT", os.path.join(ROOT, "build", "debug", "ringfront"))
NBACKENDS = 3
WORKERS = 2
KEEPALIVE = 8
RECV_BUFFERS, RECV_BUFFER_KB = 128, 16


def ring_rss_kb(pid):
    """RSS of the receive-buffer rings (src/bufring.c): read-write mappings
    of exactly recv_buffers x recv_buffer_size between two PROT_NONE guard
    pages. None when no such mapping is found."""
    want = RECV_BUFFERS * RECV_BUFFER_KB * 1024
    vmas = []
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) ", line)
                if m:
                    vmas.append([int(m.group(1), 16), int(m.group(2), 16), m.group(3), 0])
                elif line.startswith("Rss:") and vmas:
                    vmas[-1][3] = int(line.split()[1])
    except OSError:
        return None
    found, total = 0, 0
    for i in range(1, len(vmas) - 1):
        lo, hi, perms, rss = vmas[i]
        prev, nxt = vmas[i - 1], vmas[i + 1]
        if (hi - lo == want and perms.startswith("rw") and prev[1] == lo and
                prev[2].startswith("---") and nxt[0] == hi and nxt[2].startswith("---")):
            found += 1
            total += rss
    return total if found else None


class Stopper:
    def __init__(self):
        self.ev = threading.Event()

    def sleep(self, s):
        return self.ev.wait(s)


def log(msg):
    print("soak: " + msg, flush=True)


def start_backend(port):
    p = subprocess.Popen([DEMO, "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("demo-backend on %d did not start" % port)


def check_config(text):
    fd, path = tempfile.mkstemp(prefix="rf-soak-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        r = subprocess.run([RINGFRONT, "-t", "-c", path], capture_output=True, text=True,
                           timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).strip()
    finally:
        os.unlink(path)


def make_config(port, aport, backends, features, ports, weight=1):
    servers = " ".join("127.0.0.1:%d%s" % (p, " weight=%d" % weight if i == 0 and weight > 1 else "")
                       for i, p in enumerate(backends))
    lines = ["[server]", "listen = 127.0.0.1:%d" % port, "workers = %d" % WORKERS,
             "max_connections = 4000", "header_timeout = 2s", "max_header_size = 8k",
             "max_body_size = 1m", "log_level = warn",
             # receive buffers are touched page by page as large reads come
             # in: a small ring is fully touched within the warm-up, so RSS
             # growth after it is the program's, not the ring's (1024 x 16k
             # per worker would keep RSS creeping towards 32 MB for hours)
             "recv_buffers = %d" % RECV_BUFFERS, "recv_buffer_size = %dk" % RECV_BUFFER_KB, "",
             "[admin]", "listen = 127.0.0.1:%d" % aport, "",
             "[upstream app]", "servers = " + servers, "health_path = /health",
             "health_interval = 500ms", "health_timeout = 300ms", "fall = 2", "rise = 1",
             "max_retries = 2", "keepalive = %d" % KEEPALIVE, "connect_timeout = 1s",
             "response_timeout = 5s", "eject_time = 1s", "circuit_open_time = 1s", "",
             "[route]", "/ = app", ""]
    if "cache" in features:
        lines += ["[cache]", "memory = 4m", "max_object_size = 64k",
                  "listen = 127.0.0.1:%d" % ports["cache"], "default_ttl = 2s", ""]
    if "ratelimit" in features:
        lines += ["[ratelimit]", "rate = 1000000/1s", "burst = 1000000", "key = ip",
                  "max_keys = 10000",
                  "listen = 127.0.0.1:%d" % ports["ratelimit"], ""]
    return "\n".join(lines) + "\n"


def detect_features(port, aport, backends, ports):
    want = os.environ.get("SOAK_FEATURES", "auto").strip()
    if want == "none":
        return set()
    if want != "auto":
        return set(f.strip() for f in want.split(",") if f.strip())
    found = set()
    for f in ("cache", "ratelimit"):
        ok, _ = check_config(make_config(port, aport, backends, {f}, ports))
        if ok:
            found.add(f)
    helptext = subprocess.run([RINGFRONT, "-h"], capture_output=True, text=True,
                              timeout=10)
    if "reload" in (helptext.stdout + helptext.stderr):
        found.add("reload")
    return found


# ---- traffic --------------------------------------------------------------

def run_wrk(port, seconds, paths, out):
    lua = os.path.join(ROOT, "tests", "tools", "status.lua")
    p = subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % max(1, int(seconds)), "--timeout", "10s",
                        "-s", lua, "http://127.0.0.1:%d/" % port, "--"] + paths,
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^STATUS_JSON (.*)$", p.stdout, re.M)
    out["wrk"] = json.loads(m.group(1)) if m else {"error": p.stdout[-500:] + p.stderr[-500:]}


def admin_loop(aport, stop, counts):
    while not stop.sleep(0.5):
        for path in ("/stats", "/metrics"):
            try:
                r = request(aport, "GET", path, timeout=10)
                ok = r.status == 200 and len(r.body) > 0
                if ok and path == "/stats":
                    json.loads(r.body)
            except Exception as e:  # noqa: BLE001
                ok = False
                counts.setdefault("admin_errors_sample", []).append("%s: %r" % (path, e))
            counts["admin_ok" if ok else "admin_fail"] = counts.get(
                "admin_ok" if ok else "admin_fail", 0) + 1


MALFORMED = [
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n", 413),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),
]


def malformed_loop(port, stop, counts):
    i = 0
    while not stop.sleep(0.2):
        raw, want = MALFORMED[i % len(MALFORMED)]
        i += 1
        try:
            out = raw_exchange(port, raw, timeout=5)
            st = int(out[9:12]) if out.startswith(b"HTTP/1.1 ") else None
        except Exception:  # noqa: BLE001
            st = None
        key = "malformed_ok" if st == want else "malformed_wrong"
        counts[key] = counts.get(key, 0) + 1
        if st != want and len(counts.setdefault("malformed_sample", [])) < 5:
            counts["malformed_sample"].append("%r -> %r" % (raw[:40], st))
        if i % 10 == 0:
            # a slow head that hits header_timeout (408)
            try:
                c = Conn(port, timeout=5)
                c.send(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n")
                out = c.read_until_close()
                c.close()
                ok = out.startswith(b"HTTP/1.1 408")
            except Exception:  # noqa: BLE001
                ok = False
            counts["slowhead_ok" if ok else "slowhead_wrong"] = counts.get(
                "slowhead_ok" if ok else "slowhead_wrong", 0) + 1


def restart_loop(backends, procs, stop, counts):
    k = 0
    while not stop.sleep(SOAK_RESTART):
        i = k % len(backends)
        k += 1
        procs[i].kill()
        procs[i].wait()
        time.sleep(0.5)
        try:
            procs[i] = start_backend(backends[i])
            counts["restarts"] = counts.get("restarts", 0) + 1
        except RuntimeError as e:
            counts.setdefault("restart_errors", []).append(str(e))


def reload_loop(rf_proc, ini_path, texts, stop, counts):
    k = 0
    while not stop.sleep(30):
        k += 1
        with open(ini_path, "w") as f:
            f.write(texts[k % 2])
        rf_proc.send_signal(signal.SIGHUP)
        counts["reloads"] = counts.get("reloads", 0) + 1


def resp_cmd(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def cache_loop(port, stop, counts):
    i = 0
    while not stop.sleep(0.05):
        i += 1
        key = b"soak:%d" % (i % 500)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(resp_cmd(b"SET", key, b"v" * (i % 3000)) + resp_cmd(b"GET", key) +
                      resp_cmd(b"DEL", key) + b"PING\r\n")
            data = b""
            while data.count(b"\r\n") < 5:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            ok = data.startswith(b"+OK\r\n") and data.endswith(b"+PONG\r\n")
        except OSError:
            ok = False
        counts["resp_ok" if ok else "resp_fail"] = counts.get("resp_ok" if ok else "resp_fail", 0) + 1


def ratelimit_loop(port, stop, counts):
    i = 0
    while not stop.sleep(0.05):
        i += 1
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"".join(b"client-%d\n" % ((i + k) % 100) for k in range(20)))
            data = b""
            while data.count(b"\n") < 20:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            s.close()
            ok = all(line in (b"OK", b"ERROR") for line in data.split(b"\n")[:20])
        except OSError:
            ok = False
        counts["rl_ok" if ok else "rl_fail"] = counts.get("rl_ok" if ok else "rl_fail", 0) + 1


# ---- main -----------------------------------------------------------------

def main():
    for tool in (RINGFRONT, DEMO):
        if not os.access(tool, os.X_OK):
            log("missing %s (run make debug)" % tool)
            return 2
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))

    port, aport = free_port(), free_port()
    ports = {"cache": free_port(), "ratelimit": free_port()}
    backends = [free_port() for _ in range(NBACKENDS)]
    features = detect_features(port, aport, backends, ports)
    ini = make_config(port, aport, backends, features, ports)
    ok, msg = check_config(ini)
    if not ok:
        log("configuration refused: " + msg)
        return 2
    log("%s for %ds (warm-up %ds), %d backends, %d workers, features: %s"
        % (os.path.relpath(RINGFRONT, ROOT), SOAK_TIME, SOAK_WARMUP, NBACKENDS, WORKERS,
           ", ".join(sorted(features)) or "core only"))

    procs = [start_backend(p) for p in backends]
    fd, ini_path = tempfile.mkstemp(prefix="rf-soak-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(ini)
    errlog = tempfile.NamedTemporaryFile(prefix="rf-soak-", suffix=".log", delete=False)
    env = dict(os.environ)
    # A small quarantine: ASan holds freed memory back (256 MB by default)
    # and RSS climbs until that fills, which at the few frees ringfront
    # makes takes longer than any warm-up. With 2 MB, RSS after warm-up
    # measures the program; use-after-free of recent frees is still caught.
    env.setdefault("ASAN_OPTIONS", "quarantine_size_mb=2:detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    rf = subprocess.Popen([RINGFRONT, "-c", ini_path], stdout=errlog, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, env=env)
    counts = {}
    samples = []
    verdict = []
    stop = Stopper()
    threads = []
    wrk_out = {}
    try:
        if not port_opens(port, 30, rf):
            log("ringfront did not start")
            return 1
        listen = [port, aport] + [ports[f] for f in ("cache", "ratelimit") if f in features]
        paths = ["/users/1", "/bytes/4000", "/chunked/6000", "/users/2", "/slow/5",
                 "/status/404", "/headers"]
        if "cache" in features:
            paths += ["/cache/a", "/cache/b"]
        t_start = time.time()
        wt = threading.Thread(target=run_wrk, args=(port, SOAK_TIME, paths, wrk_out))
        wt.start()
        strict = Load(port, 2, ["/users/3", "/bytes/1000", "/chunked/2000"], pause=0.01).start()
        for fn, args in ((admin_loop, (aport,)), (malformed_loop, (port,)),
                         (restart_loop, (backends, procs))):
            threads.append(threading.Thread(target=fn, args=args + (stop, counts), daemon=True))
        if "reload" in features:
            texts = [ini, make_config(port, aport, backends, features, ports, weight=2)]
            threads.append(threading.Thread(target=reload_loop,
                                            args=(rf, ini_path, texts, stop, counts), daemon=True))
        if "cache" in features:
            threads.append(threading.Thread(target=cache_loop, args=(ports["cache"], stop, counts),
                                            daemon=True))
        if "ratelimit" in features:
            threads.append(threading.Thread(target=ratelimit_loop,
                                            args=(ports["ratelimit"], stop, counts), daemon=True))
        for t in threads:
            t.start()

        warm_rss = None
        warm_census = None
        cpu_prev, t_prev = cpu_seconds(rf.pid), time.time()
        next_sample = t_start
        while time.time() - t_start < SOAK_TIME:
            if rf.poll() is not None:
                verdict.append("ringfront exited with %s during the soak" % rf.returncode)
                break
            now = time.time()
            if now >= next_sample:
                cpu = cpu_seconds(rf.pid)
                c = fd_census(rf.pid, listen)
                samples.append({"t": round(now - t_start), "rss_kb": rss_kb(rf.pid),
                                "ring_kb": ring_rss_kb(rf.pid),
                                "fds": c["total"], "clients": c["client"],
                                "backend": c["backend"], "dead": c["dead"],
                                "cpu": round((cpu - cpu_prev) / max(0.001, now - t_prev), 2)})
                cpu_prev, t_prev = cpu, now
                next_sample += 10
                if warm_rss is None and now - t_start >= SOAK_WARMUP:
                    warm_rss = samples[-1]["rss_kb"] - (samples[-1]["ring_kb"] or 0)
                    warm_census = c
            time.sleep(0.5)
        strict_res = strict.stop()
        stop.ev.set()
        wt.join(SOAK_TIME + 120)
        for t in threads:
            t.join(30)

        # traffic is over: the descriptors must come back
        end_census = None
        if rf.poll() is None:
            pool_max = KEEPALIVE * NBACKENDS * WORKERS
            deadline = time.time() + 10
            while time.time() < deadline:
                end_census = fd_census(rf.pid, listen)
                if (end_census["client"] == 0 and end_census["dead"] == 0 and
                        end_census["backend"] <= pool_max + NBACKENDS * WORKERS):
                    break
                time.sleep(0.2)
            end_ring = ring_rss_kb(rf.pid)
            end_rss = rss_kb(rf.pid) - (end_ring or 0)
            samples.append({"t": round(time.time() - t_start), "rss_kb": rss_kb(rf.pid),
                            "ring_kb": end_ring,
                            "fds": end_census["total"], "clients": end_census["client"],
                            "backend": end_census["backend"], "dead": end_census["dead"],
                            "cpu": 0})
            base = warm_census or end_census
            if end_census["client"] or end_census["dead"]:
                verdict.append("descriptors left after the traffic: %r" % end_census)
            if end_census["other"] > base["other"] or end_census["listen"] != base["listen"]:
                verdict.append("non-socket descriptors or listeners changed: %r -> %r"
                               % (base, end_census))
            if end_census["backend"] > pool_max + NBACKENDS * WORKERS:
                verdict.append("%d backend connections open, the pools hold at most %d"
                               % (end_census["backend"], pool_max))
            if warm_rss and end_rss > warm_rss * (1 + RSS_GROWTH):
                verdict.append("RSS outside the receive buffers grew %.0f%% after warm-up "
                               "(%d -> %d kB)" % (100.0 * (end_rss - warm_rss) / warm_rss,
                                                  warm_rss, end_rss))
            # a graceful stop, which also runs LeakSanitizer
            rf.send_signal(signal.SIGTERM)
            try:
                rf.wait(30)
            except subprocess.TimeoutExpired:
                rf.kill()
                rf.wait()
                verdict.append("ringfront did not stop on SIGTERM within 30 s")
            if rf.returncode not in (0, None):
                verdict.append("ringfront exited with %s at stop" % rf.returncode)
        errlog.flush()
        with open(errlog.name, errors="replace") as f:
            out = f.read()
        for mark in SANITIZER_MARKS:
            if mark in out:
                i = out.index(mark)
                verdict.append("sanitizer report:\n" + out[max(0, i - 200):i + 3000])
                break
        report = render(features, counts, wrk_out.get("wrk", {}), strict_res, samples,
                        warm_rss, warm_census, end_census, verdict, out)
        print(report)
        if os.environ.get("SOAK_REPORT"):
            with open(os.environ["SOAK_REPORT"], "w") as f:
                f.write(report + "\n")
        return 1 if verdict else 0
    finally:
        stop.ev.set()
        if rf.poll() is None:
            rf.kill()
            rf.wait()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for path in (ini_path, errlog.name):
            try:
                os.unlink(path)
            except OSError:
                pass


def render(features, counts, wrk, strict, samples, warm_rss, warm_census, end_census,
           verdict, out):
    L = []
    L.append("=" * 72)
    L.append("ringfront soak report: %ds, features: %s" % (SOAK_TIME, ", ".join(sorted(features)) or "core only"))
    L.append("-" * 72)
    if "requests" in wrk:
        dur = wrk["duration_us"] / 1e6
        L.append("wrk (proxy traffic): %d requests in %.0fs (%.0f/s), p50 %.1f ms, p99 %.1f ms"
                 % (wrk["requests"], dur, wrk["requests"] / max(dur, 1), wrk["latency_us"]["p50"] / 1000,
                    wrk["latency_us"]["p99"] / 1000))
        by_class = {}
        for code, n in wrk["status"].items():
            k = code[0] + "xx"
            by_class[k] = by_class.get(k, 0) + n
        L.append("  by status: %s" % ", ".join("%s: %d" % kv for kv in sorted(wrk["status"].items())))
        L.append("  by class:  %s" % ", ".join("%s: %d" % kv for kv in sorted(by_class.items())))
        e = wrk["errors"]
        L.append("  socket errors: connect %d, read %d, write %d, timeout %d"
                 % (e["connect"], e["read"], e["write"], e["timeout"]))
    else:
        L.append("wrk: %s" % wrk.get("error", "no result"))
    L.append("strict clients: %d requests, by status %s, failures %s"
             % (strict["requests"], dict(sorted(strict["status"].items())), strict["errors"]))
    if strict["samples"]:
        L.append("  e.g. %r" % strict["samples"][:3])
    L.append("admin: %d ok, %d failed; malformed: %d answered right, %d wrong; slow heads: %d x 408, %d wrong"
             % (counts.get("admin_ok", 0), counts.get("admin_fail", 0), counts.get("malformed_ok", 0),
                counts.get("malformed_wrong", 0), counts.get("slowhead_ok", 0),
                counts.get("slowhead_wrong", 0)))
    if counts.get("malformed_sample"):
        L.append("  wrong answers, e.g. %s" % "; ".join(counts["malformed_sample"]))
    L.append("backend restarts (SIGKILL + start): %d%s"
             % (counts.get("restarts", 0),
                ", errors %r" % counts["restart_errors"] if counts.get("restart_errors") else ""))
    if "reload" in features:
        L.append("reloads (SIGHUP): %d" % counts.get("reloads", 0))
    if "cache" in features:
        L.append("RESP rounds: %d ok, %d failed" % (counts.get("resp_ok", 0), counts.get("resp_fail", 0)))
    if "ratelimit" in features:
        L.append("rate-limit line protocol rounds: %d ok, %d failed"
                 % (counts.get("rl_ok", 0), counts.get("rl_fail", 0)))
    L.append("-" * 72)
    L.append("  t(s)   RSS(kB)  rings(kB)  rest(kB)   fds  clients  backend  dead  CPU(s/s)")
    for s in samples:
        ring = s.get("ring_kb")
        L.append("%6d %9d %10s %9d %5d %8d %8d %5d %9.2f" % (
            s["t"], s["rss_kb"], "?" if ring is None else ring, s["rss_kb"] - (ring or 0),
            s["fds"], s["clients"], s["backend"], s["dead"], s["cpu"]))
    if warm_rss and samples:
        last = samples[-1]
        rest = last["rss_kb"] - (last.get("ring_kb") or 0)
        L.append("RSS outside the receive-buffer rings after warm-up %d kB, at the end %d kB (%+.1f%%);"
                 " the rings hold %s of %d kB" % (
                     warm_rss, rest, 100.0 * (rest - warm_rss) / warm_rss,
                     "?" if last.get("ring_kb") is None else "%d" % last["ring_kb"],
                     WORKERS * RECV_BUFFERS * RECV_BUFFER_KB))
        half = [x for x in samples[:-1] if x["t"] >= SOAK_TIME / 2]
        if len(half) >= 2 and half[-1]["t"] > half[0]["t"]:
            dt = (half[-1]["t"] - half[0]["t"]) / 60.0
            r0 = half[0]["rss_kb"] - (half[0].get("ring_kb") or 0)
            r1 = half[-1]["rss_kb"] - (half[-1].get("ring_kb") or 0)
            L.append("slope over the second half: RSS %+.1f kB/min, outside the rings %+.1f kB/min"
                     % ((half[-1]["rss_kb"] - half[0]["rss_kb"]) / dt, (r1 - r0) / dt))
    if warm_census and end_census:
        L.append("descriptors after warm-up %d (%d non-socket, %d listening), after the traffic %d "
                 "(%d non-socket, %d listening, %d clients, %d pooled backend, %d dead)"
                 % (warm_census["total"], warm_census["other"], warm_census["listen"],
                    end_census["total"], end_census["other"], end_census["listen"],
                    end_census["client"], end_census["backend"], end_census["dead"]))
    warns = [l for l in out.splitlines() if "level=error" in l]
    L.append("error log lines: %d" % len(warns))
    for l in warns[:5]:
        L.append("  " + l[:200])
    L.append("-" * 72)
    L.append("VERDICT: " + ("FAIL\n  " + "\n  ".join(verdict) if verdict else
                            "PASS (no crash, no sanitizer report, no leaked descriptor, RSS flat)"))
    L.append("=" * 72)
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
