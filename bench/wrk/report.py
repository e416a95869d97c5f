#!/usr/bin/env python3
"""report.py - the arithmetic and the markdown of bench/wrk/run.sh.

run.sh does the measuring (process trees, /proc/stat, wrk, the speed
reference) and hands the raw numbers here:

  report.py record RUNS.jsonl key=value...   derive one run's figures from its
                                             raw samples and its wrk output,
                                             append them as a JSON line and
                                             print a one-line summary
  report.py report DIR                       the markdown report of every run
                                             recorded in DIR/runs.jsonl, with
                                             DIR/meta.tsv, DIR/scenarios.tsv
                                             and DIR/skips.tsv

Standard library only (python3 >= 3.7).
"""

import json
import os
import re
import statistics
import sys

# A run is flagged when the speed reference moved by more than this between
# before and after, or when CPU time nobody of ours used exceeds this share of
# one CPU (see README: "Flags").
SPEED_DRIFT_MAX = 0.30
FOREIGN_MAX_PCT = 10.0
# The proxy is "the bottleneck" when its tree used at least this much of the
# CPUs it was given.
BOUND_PCT = 90.0
# A ratio of CPU per request within this distance of 1.0 is a tie.
TIE = 0.15

PEERS = ("haproxy", "nginx")
# ringfront's variants (run.sh): the same configurations with io = epoll,
# batch_wait_us = 100, or workers = 1. Their rows also note their CPU per
# request and requests/s against ringfront's.
VARIANTS = ("ringfront-epoll", "ringfront-batch", "ringfront-w1")
TARGET_ORDER = ("ringfront",) + VARIANTS + ("ringfront-lt", "haproxy", "nginx", "direct")
# ringfront's rows that get a ratio against the best peer. ringfront-lt is
# ringfront with balance = least_time (slow scenario only).
OURS = ("ringfront",) + VARIANTS + ("ringfront-lt",)
# Row labels in the scenarios that balance by load (unit "share").
SHARE_LABELS = {"ringfront": "ringfront least_conn", "ringfront-lt": "ringfront least_time",
                "ringfront-epoll": "ringfront-epoll least_conn",
                "ringfront-batch": "ringfront-batch least_conn",
                "ringfront-w1": "ringfront-w1 least_conn",
                "haproxy": "haproxy leastconn", "nginx": "nginx least_conn"}
# The 429 scenario is valid only if (almost) every response was a 429.
MIN_429_SHARE = 0.99
# Flags that mean other people's work shared the machine during the run: such
# runs are left out of the medians when the target has clean runs as well.
# (A speed drift alone is only reported: the core's speed flips between two
# levels many times a minute, so it is noise every target gets its share of.)
NOISE_FLAGS = ("foreign load",)
# Flags that mean the run did not measure the scenario at all (the cache
# scenario answered by the backends): such runs never enter the medians.
INVALID_FLAGS = ("NOT CACHED",)


def noisy(r):
    return any(f.startswith(NOISE_FLAGS) for f in r["flags"])


def invalid(r):
    return any(f.startswith(INVALID_FLAGS) for f in r["flags"])

# --------------------------------------------------------------------------
# wrk output


_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_UNITS_B = {"B": 1.0, "KB": 1024.0, "MB": 1024.0 ** 2, "GB": 1024.0 ** 3,
            "TB": 1024.0 ** 4}


def _dur_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        return None
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def _bytes(text):
    m = re.fullmatch(r"([0-9.]+)(B|KB|MB|GB|TB)", text)
    if not m:
        return None
    return float(m.group(1)) * _UNITS_B[m.group(2)]


def parse_wrk(path):
    """Figures from one `wrk --latency` output file (plus the .rc and .times
    files run.sh writes beside it). Missing figures stay None."""
    out = {"requests": None, "wrk_seconds": None, "rps": None, "bytes_read": None,
           "transfer_Bps": None, "p50_us": None, "p75_us": None, "p90_us": None,
           "p99_us": None, "non2xx": 0, "err_connect": 0, "err_read": 0,
           "err_write": 0, "err_timeout": 0, "wrk_rc": None, "wrk_cpu_s": None,
           "wrk_error": None, "statuses": None}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        out["wrk_error"] = str(e)
        return out
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+[KMGT]?B) read",
                  text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["wrk_seconds"] = _dur_us(m.group(2) + m.group(3)) / 1e6
        out["bytes_read"] = _bytes(m.group(4))
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"^Transfer/sec:\s+([0-9.]+[KMGT]?B)", text, re.M)
    if m:
        out["transfer_Bps"] = _bytes(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+([0-9.]+(?:us|ms|s|m|h))\s*$" % pct, text, re.M)
        if m:
            # wrk prints 0.00us for percentiles it has no samples for
            out["p%s_us" % pct] = _dur_us(m.group(1)) or None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for i, k in enumerate(("err_connect", "err_read", "err_write", "err_timeout")):
            out[k] = int(m.group(i + 1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    # bench/wrk/status.lua's exact count per status
    m = re.search(r"^Status counts:(.*)$", text, re.M)
    if m:
        out["statuses"] = dict((k, int(v)) for k, v in re.findall(r"(\d+)=(\d+)", m.group(1)))
    if out["requests"] is None:
        first = [l for l in text.splitlines() if l.strip()]
        out["wrk_error"] = (first[-1] if first else "no output")[:200]
    try:
        with open(path + ".rc") as f:
            out["wrk_rc"] = int(f.read().strip() or -1)
    except (OSError, ValueError):
        pass
    # bash `times` before and after wrk: the second line is the CPU time of
    # the shell's reaped children, and the one reaped in between is
    # timeout(1) with wrk.
    try:
        cpu = []
        for suffix in (".times0", ".times1"):
            with open(path + suffix) as f:
                lines = f.read().split("\n")
            tot = 0.0
            for part in lines[1].split():
                m = re.fullmatch(r"(\d+)m([0-9.]+)s", part)
                if m:
                    tot += int(m.group(1)) * 60 + float(m.group(2))
            cpu.append(tot)
        out["wrk_cpu_s"] = cpu[1] - cpu[0]
    except (OSError, IndexError):
        pass
    return out


# --------------------------------------------------------------------------
# one run


def _num(v):
    try:
        if re.fullmatch(r"-?\d+", v):
            return int(v)
        return float(v)
    except (TypeError, ValueError):
        return v


def derive(raw):
    """All figures of one run from run.sh's raw samples."""
    r = dict(raw)
    w = parse_wrk(raw["wrk_out"])
    r.update(w)
    hz = float(raw.get("clk_tck", 100))
    window = float(raw["t1"]) - float(raw["t0"])
    r["window_s"] = window
    ticks = lambda k: float(raw[k + "1"]) - float(raw[k + "0"])  # noqa: E731

    proxy_s = ticks("proxy_ticks") / hz
    be_s = [ticks("be1_ticks") / hz, ticks("be2_ticks") / hz]
    r["proxy_cpu_s"] = proxy_s
    r["backend_cpu_s"] = be_s
    req = w["requests"] or 0
    r["cpu_us_req"] = proxy_s * 1e6 / req if req else None
    r["proxy_cpu_pct"] = 100.0 * proxy_s / window if window > 0 else None
    r["mibps"] = w["transfer_Bps"] / 1024.0 ** 2 if w["transfer_Bps"] else None
    r["rss_mb"] = float(raw.get("rss_kb", 0)) / 1024.0
    opts = raw.get("unit", "").split(",")
    sockerr = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
    st = w["statuses"]
    r["n2xx"] = r["n429"] = r["share_429"] = None
    if st is not None:
        # Exact counts: the statuses that are not the expected ones are the
        # errors (in the 429 scenario, 429 is expected).
        ok = lambda c: 200 <= int(c) < 400 or ("429" in opts and int(c) == 429)  # noqa: E731
        r["errors"] = sockerr + sum(n for c, n in st.items() if not ok(c))
        r["n2xx"] = sum(n for c, n in st.items() if 200 <= int(c) < 300)
        r["n429"] = st.get("429", 0)
        r["share_429"] = float(r["n429"]) / req if req else None
    else:
        r["errors"] = w["non2xx"] + sockerr

    # Machine load: everything the CPUs did minus what our own trees did
    # (the proxy, the backends, wrk, and the speed reference's sampler).
    ref_s = ticks("ref_ticks") / hz if "ref_ticks0" in raw else 0.0
    own = proxy_s + ref_s + (w["wrk_cpu_s"] or 0.0)
    if raw["target"] == "direct":
        own += be_s[1]          # the proxy tree *is* backend 1
    else:
        own += be_s[0] + be_s[1]
    busy_all = ticks("stat_busy_all") / hz
    r["busy_all_pct"] = 100.0 * busy_all / window
    r["own_pct"] = 100.0 * own / window
    r["foreign_pct"] = 100.0 * (busy_all - own) / window
    for c in ("0", "1"):
        r["cpu%s_busy_pct" % c] = 100.0 * ticks("stat_busy_cpu" + c) / hz / window
    r["steal_pct"] = 100.0 * ticks("stat_steal_all") / hz / window
    r["cpu0_foreign_pct"] = r["cpu1_foreign_pct"] = None
    if raw.get("mode") == "pinned":
        # Only the proxy runs on CPU 0, backends and wrk on CPU 1 (the speed
        # reference runs outside the window): per CPU, the rest is somebody
        # else's. Direct runs do not use CPU 0, so only CPU 1 counts there.
        wrk_s = w["wrk_cpu_s"] or 0.0
        if raw["target"] == "direct":
            r["cpu0_foreign_pct"] = r["cpu0_busy_pct"] - 100.0 * ref_s / window
            r["cpu1_foreign_pct"] = r["cpu1_busy_pct"] - 100.0 * (own - ref_s) / window
        else:
            r["cpu0_foreign_pct"] = r["cpu0_busy_pct"] - 100.0 * (proxy_s + ref_s) / window
            r["cpu1_foreign_pct"] = r["cpu1_busy_pct"] - 100.0 * (be_s[0] + be_s[1] + wrk_s) / window
        r["relevant_foreign_pct"] = (r["cpu1_foreign_pct"] if raw["target"] == "direct"
                                     else max(r["cpu0_foreign_pct"], r["cpu1_foreign_pct"]))
    else:
        r["relevant_foreign_pct"] = r["foreign_pct"]

    # Backend side: stub_status counters before/after (each status request
    # counts itself once, hence the -1s).
    # The demo backend (slow scenario) does not count its /__stats requests.
    be_req = []
    be_conn = []
    for b in ("1", "2"):
        self_count = 0 if raw.get("be%s_kind" % b) == "demo" else 1
        try:
            be_req.append(int(raw["be%s_req1" % b]) - int(raw["be%s_req0" % b]) - self_count)
            be_conn.append(int(raw["be%s_acc1" % b]) - int(raw["be%s_acc0" % b]) - 1)
        except (KeyError, ValueError):
            be_req.append(None)
            be_conn.append(None)
    r["be_req"] = be_req
    r["be_conn"] = be_conn
    r["slow_share"] = None
    if "share" in opts and None not in be_req and sum(be_req) > 0:
        r["slow_share"] = be_req[1] / float(sum(be_req))

    ref0, ref1 = float(raw.get("ref0") or 0), float(raw.get("ref1") or 0)
    r["ref_before_us"], r["ref_after_us"] = ref0, ref1
    during = []
    try:
        with open(raw.get("ref_during", "")) as f:
            during = [float(x) for x in f.read().split() if x.strip().isdigit()]
    except OSError:
        pass
    # The core flips between two speeds; the mean says how much of the run
    # it spent in which.
    r["ref_during_us"] = statistics.mean(during) if during else None
    r["ref_during_min"] = min(during) if during else None
    r["ref_during_max"] = max(during) if during else None
    r["ref_during_n"] = len(during)
    r["ref_drift"] = abs(ref1 - ref0) / min(ref0, ref1) if ref0 > 0 and ref1 > 0 else None

    flags = []
    if w["requests"] is None:
        flags.append("wrk failed: %s" % w["wrk_error"])
    if w["wrk_rc"] not in (0, None):
        flags.append("wrk exit %s" % w["wrk_rc"])
    # The speed reference runs on CPU 0, which a pinned direct run does not use.
    if (r["ref_drift"] is not None and r["ref_drift"] > SPEED_DRIFT_MAX
            and not (raw.get("mode") == "pinned" and raw["target"] == "direct")):
        flags.append("speed drift %.0f%%" % (100 * r["ref_drift"]))
    if r["relevant_foreign_pct"] > FOREIGN_MAX_PCT:
        if r["cpu0_foreign_pct"] is None:
            flags.append("foreign load %.0f%%" % r["foreign_pct"])
        elif raw["target"] == "direct":
            flags.append("foreign load %.0f%% on CPU1" % r["cpu1_foreign_pct"])
        else:
            flags.append("foreign load %.0f%%/%.0f%% on CPU0/1" % (r["cpu0_foreign_pct"],
                                                                r["cpu1_foreign_pct"]))
    if r["errors"]:
        flags.append("errors %d" % r["errors"])
    if "429" in opts:
        if r["share_429"] is None:
            flags.append("no status counts (status.lua)")
        elif r["share_429"] < MIN_429_SHARE:
            flags.append("only %.1f%% 429s" % (100 * r["share_429"]))
    if "cache" in opts:
        # Every response must come from the proxy's cache: the backends see
        # nothing but the refetch of an expired entry (run.sh's allowance).
        allowed = int(raw.get("cache_allowed") or raw.get("conns", 64))
        if None in be_req:
            flags.append("NOT CACHED? no backend counts")
        elif sum(be_req) > allowed:
            flags.append("NOT CACHED: backends saw %d requests (at most %d expected)"
                         % (sum(be_req), allowed))
    elif req and None not in be_req and raw["target"] != "direct":
        # The run ends with requests in flight that the backend answered but
        # wrk never counted: up to conns x pipeline depth. In the 429
        # scenario only the admitted requests (2xx) may reach a backend.
        expect = req
        if "429" in opts and r["n2xx"] is not None:
            expect = r["n2xx"]
        slack = int(raw.get("conns", 64)) * int(raw.get("depth", 1)) + 0.01 * expect
        if abs(sum(be_req) - expect) > slack:
            flags.append("backends saw %d requests, expected %d" % (sum(be_req), expect))
        elif sum(be_req) > 1000 and "share" not in opts:
            share = be_req[0] / float(sum(be_req))
            if abs(share - 0.5) > 0.05:
                flags.append("round-robin share %.0f/%.0f" % (100 * share, 100 - 100 * share))
    r["flags"] = flags
    r["bound"] = bottleneck(r)
    return r


def bottleneck(r):
    """Which resource limited the run, as far as CPU use tells."""
    cap = 100.0 * float(r.get("proxy_cpus", 1))
    if r["target"] == "direct":
        return "ceiling"
    if r["proxy_cpu_pct"] is not None and r["proxy_cpu_pct"] >= BOUND_PCT * cap / 100.0:
        return "proxy"
    if r.get("mode") == "pinned" and r["cpu1_busy_pct"] >= BOUND_PCT:
        return "CPU1"
    if r.get("mode") != "pinned" and r["busy_all_pct"] >= 2 * BOUND_PCT:
        return "both CPUs"
    return "?"


def fmt_int(v):
    return "—" if v is None else "{:,.0f}".format(v)


def fmt_f(v, nd=1):
    return "—" if v is None else ("{:,.%df}" % nd).format(v)


def fmt_foreign(r):
    s = fmt_f(r["foreign_pct"], 0)
    if r.get("cpu0_foreign_pct") is not None:
        s += "; %s/%s" % (fmt_f(r["cpu0_foreign_pct"], 0), fmt_f(r["cpu1_foreign_pct"], 0))
    return s


def fmt_ref(r):
    """before→after (mean during) of the speed reference, in µs."""
    s = "%s→%s" % (fmt_int(r["ref_before_us"]), fmt_int(r["ref_after_us"]))
    if r.get("ref_during_us"):
        s += " (%s)" % fmt_int(r["ref_during_us"])
    return s


def fmt_ms(us):
    return "—" if us is None else "%.2f" % (us / 1000.0)


def one_line(r):
    s = "%-9s %-9s #%-2s %9s req/s" % (r["scenario"], r["target"], r["rep"], fmt_int(r["rps"]))
    if "mbps" in r.get("unit", "").split(","):
        s += " %7s MiB/s" % fmt_f(r["mibps"])
    s += "  p50 %s ms  p99 %s ms  %s µs/req  CPU %s%%  RSS %s MB  ref %s" % (
        fmt_ms(r["p50_us"]), fmt_ms(r["p99_us"]), fmt_f(r["cpu_us_req"]),
        fmt_f(r["proxy_cpu_pct"], 0), fmt_f(r["rss_mb"]), fmt_ref(r))
    if r.get("share_429") is not None:
        s += "  429s %.2f%%" % (100 * r["share_429"])
    if r.get("slow_share") is not None:
        s += "  slow backend %.2f%%" % (100 * r["slow_share"])
    if r["flags"]:
        s += "  [" + "; ".join(r["flags"]) + "]"
    return s


def cmd_record(argv):
    out = argv[0]
    raw = {}
    for kv in argv[1:]:
        k, _, v = kv.partition("=")
        raw[k] = v
    r = derive(raw)
    for k, v in list(r.items()):
        if isinstance(v, str) and k not in ("scenario", "target", "wrk_out", "mode", "unit",
                                            "rep", "wrk_error"):
            r[k] = _num(v)
    with open(out, "a") as f:
        f.write(json.dumps(r, sort_keys=True) + "\n")
    print(one_line(r))


# --------------------------------------------------------------------------
# the report


def read_tsv(path, ncols):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                parts = line.split("\t")
                parts += [""] * (ncols - len(parts))
                rows.append(parts[:ncols])
    except OSError:
        pass
    return rows


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def verdict(ratio):
    if ratio is None:
        return ""
    ratio = round(ratio, 2)     # judge the figure the reader sees
    if abs(ratio - 1.0) <= TIE:
        return "tie"
    return "better" if ratio < 1.0 else "worse"


def cmd_report(argv):
    d = argv[0]
    meta = dict((k, v) for k, v in read_tsv(os.path.join(d, "meta.tsv"), 2))
    scen = read_tsv(os.path.join(d, "scenarios.tsv"), 5)   # name desc wrk unit status
    skips = read_tsv(os.path.join(d, "skips.tsv"), 3)      # target scenario reason
    runs = []
    try:
        with open(os.path.join(d, "runs.jsonl")) as f:
            runs = [json.loads(l) for l in f if l.strip()]
    except OSError:
        pass
    targets = [t for t in meta.get("targets", "").split(",") if t]
    p = []
    w = p.append

    w("# ringfront benchmark — %s" % meta.get("date", "?"))
    w("")
    w("| | |")
    w("|---|---|")
    for k, label in (("mode", "mode"), ("command", "command"), ("host", "machine"),
                     ("cpu", "CPU model"), ("kernel", "kernel"), ("nofile", "ulimit -n"),
                     ("ringfront", "ringfront"), ("haproxy", "HAProxy"), ("nginx", "nginx"),
                     ("wrk", "wrk"), ("duration", "run length"), ("repeat", "repeats"),
                     ("foreign_start", "load before start")):
        if meta.get(k):
            w("| %s | %s |" % (label, meta[k].replace("|", "\\|")))
    refs = [x for r in runs for x in (r.get("ref_before_us"), r.get("ref_after_us")) if x]
    during = [r["ref_during_us"] for r in runs if r.get("ref_during_us")]
    if refs:
        w("| CPU speed reference | fixed 5M-iteration loop (`bench/wrk/cpuref.c`, CPU time) on "
          "CPU 0 at start: %s µs; before/after every run: min %s / median %s / max %s µs over "
          "%d samples; during the runs (mean per run): min %s / median %s / max %s µs; "
          "lower is faster |" % (
              meta.get("ref_start", "?"), fmt_int(min(refs)), fmt_int(statistics.median(refs)),
              fmt_int(max(refs)), len(refs), fmt_int(min(during) if during else None),
              fmt_int(statistics.median(during) if during else None),
              fmt_int(max(during) if during else None)))
    w("")
    w("Medians over the repeats. CPU µs/req = utime+stime of the target's whole process "
      "tree over the run ÷ completed requests (for `direct`: backend 1's nginx). CPU %% = that "
      "tree's share of one CPU. Ratio = ringfront's CPU µs/req ÷ the best of HAProxy and nginx, "
      "median of the per-repeat ratios; within ±%.2f of 1.0 is a tie. p50/p99 from "
      "`wrk --latency`. Errors = non-2xx/3xx + socket errors, summed over the repeats. "
      "ref µs = the speed reference during the runs (lower = faster core): compare it "
      "between targets before reading much into a small difference." % TIE)
    w("")

    for name, desc, wrkcmd, unit, status in scen:
        opts = unit.split(",")
        w("## %s — %s" % (name, desc))
        w("")
        if status != "ok":
            w("_Skipped: %s_" % status)
            w("")
            continue
        w("`%s`" % wrkcmd)
        w("")
        here = list(targets)
        if "share" in opts and "ringfront" in here:
            here.insert(here.index("ringfront") + 1, "ringfront-lt")
        cols = ["target", "req/s"]
        if "mbps" in opts:
            cols.append("MiB/s")
        cols += ["p50 ms", "p99 ms", "CPU µs/req", "CPU %", "RSS MB", "errors", "ref µs"]
        if "429" in opts:
            cols += ["429 share", "backend req"]
        if "cache" in opts:
            cols += ["backend req"]
        if "share" in opts:
            cols += ["slow backend share", "p99 ÷ best peer"]
        cols += ["CPU ÷ best peer" if "share" in opts else "ringfront ÷ best peer",
                 "limited by", "notes"]
        w("| " + " | ".join(cols) + " |")
        w("|" + "|".join(["---"] + ["--:"] * (len(cols) - 4) + ["---", "---", "---"]) + "|")
        sr = [r for r in runs if r["scenario"] == name]
        by_t = {}
        all_t = {}
        for r in sr:
            all_t.setdefault(r["target"], []).append(r)
        for t, rs in all_t.items():
            valid = [r for r in rs if not invalid(r)]
            clean = [r for r in valid if not noisy(r)]
            by_t[t] = clean or valid
        peers = [t for t in PEERS if all_t.get(t)]

        def ratios_of(ours, key):
            """Per-repeat ratio of <ours>'s figure <key> to the best peer's of
            that same repeat: the pairs ran seconds apart, so they share most
            of the machine's noise. A repeat counts only if <ours> and every
            peer that ran have a (clean) run in it; otherwise fall back to
            the ratio of the medians."""
            out = []
            for rep in sorted({r["rep"] for r in sr}):
                rf = [r[key] for r in by_t.get(ours, []) if r["rep"] == rep]
                pe = [r[key] for t in peers for r in by_t.get(t, []) if r["rep"] == rep]
                if rf and rf[0] and peers and len(pe) == len(peers) and all(pe):
                    out.append(rf[0] / min(pe))
            mo = med([r[key] for r in by_t.get(ours, [])])
            mp = [med([r[key] for r in by_t.get(t, [])]) for t in peers]
            if not out and mo and peers and all(mp):
                out.append(mo / min(mp))
            return out

        def ratios_between(a, b, key):
            """Per-repeat ratio of <a>'s figure <key> to <b>'s, as ratios_of."""
            out = []
            for rep in sorted({r["rep"] for r in sr}):
                x = [r[key] for r in by_t.get(a, []) if r["rep"] == rep]
                y = [r[key] for r in by_t.get(b, []) if r["rep"] == rep]
                if x and y and x[0] and y[0]:
                    out.append(x[0] / y[0])
            if not out:
                mx = med([r[key] for r in by_t.get(a, [])])
                my = med([r[key] for r in by_t.get(b, [])])
                if mx and my:
                    out.append(mx / my)
            return out

        def ratio_cell(rs_, judge=True):
            if not rs_:
                return "—"
            mr = statistics.median(rs_)
            cell = "**%.2f**" % mr + (" " + verdict(mr) if judge else "")
            if len(rs_) > 1:
                cell += " (%.2f–%.2f)" % (min(rs_), max(rs_))
            return cell

        for t in sorted(here, key=lambda x: TARGET_ORDER.index(x) if x in TARGET_ORDER else 9):
            rs = by_t.get(t, [])
            everyrun = all_t.get(t, [])
            why = [s[2] for s in skips if s[0] == t and s[1] in (name, "*")]
            label = SHARE_LABELS.get(t, t) if "share" in opts else t
            if not rs and everyrun:
                # every run was answered by the backends: no figures at all
                w("| %s | " % label + " | ".join(["—"] * (len(cols) - 2)) +
                  " | **FAILED: not served from its cache** (%s) |"
                  % "; ".join(f for r in everyrun for f in r["flags"]).replace("|", "\\|"))
                continue
            if not rs:
                reason = why[0] if why else "no run"
                w("| %s | " % label + " | ".join(["—"] * (len(cols) - 2)) + " | %s |"
                  % (reason if reason.startswith("**FAILED") else "skipped: " + reason))
                continue
            cells = [label if t != "direct" else "direct (backend)", fmt_int(med([r["rps"] for r in rs]))]
            if "mbps" in opts:
                cells.append(fmt_f(med([r["mibps"] for r in rs])))
            if "nolat" in opts:
                cells += ["n/a", "n/a"]
            else:
                cells += [fmt_ms(med([r["p50_us"] for r in rs])), fmt_ms(med([r["p99_us"] for r in rs]))]
            cells += [
                      fmt_f(med([r["cpu_us_req"] for r in rs])),
                      fmt_f(med([r["proxy_cpu_pct"] for r in rs]), 0),
                      fmt_f(med([r["rss_mb"] for r in rs])), fmt_int(sum(r["errors"] for r in everyrun)),
                      fmt_int(med([r.get("ref_during_us") for r in rs]))]
            if "429" in opts:
                sh = med([r.get("share_429") for r in rs])
                cells.append("—" if sh is None else "%.2f%%" % (100 * sh))
                cells.append(fmt_int(med([sum(r["be_req"]) if None not in r["be_req"] else None
                                          for r in rs])))
            if "cache" in opts:
                cells.append(fmt_int(med([sum(r["be_req"]) if None not in r["be_req"] else None
                                          for r in rs])))
            if "share" in opts:
                sh = med([r.get("slow_share") for r in rs])
                cells.append("—" if sh is None else "%.2f%%" % (100 * sh))
                # lower is better; no tie band: latency is not CPU noise
                cells.append(ratio_cell(ratios_of(t, "p99_us"), judge=False) if t in OURS else "—")
            cells.append(ratio_cell(ratios_of(t, "cpu_us_req")) if t in OURS else "—")
            bounds = sorted({r["bound"] for r in rs})
            cells.append("/".join(bounds))
            notes = []
            nflag = {}
            for r in everyrun:
                for f in r["flags"]:
                    key = re.sub(r"[0-9]+(?:\.[0-9]+)?%?", "#", f)
                    nflag.setdefault(key, []).append(f)
            for key, fl in nflag.items():
                notes.append("%s (%d/%d runs)" % (fl[0], len(fl), len(everyrun))
                             if len(everyrun) > 1 else fl[0])
            if any(invalid(r) for r in everyrun):
                notes.append("**%d run(s) FAILED: not served from the cache**, left out"
                             % sum(1 for r in everyrun if invalid(r)))
            if t in VARIANTS:
                for key, what in (("cpu_us_req", "CPU µs/req"), ("rps", "req/s")):
                    eu = ratios_between(t, "ringfront", key)
                    if eu:
                        notes.append("%s ÷ ringfront: **%.2f**%s" % (
                            what, statistics.median(eu),
                            " (%.2f–%.2f)" % (min(eu), max(eu)) if len(eu) > 1 else ""))
            if len(rs) < len([r for r in everyrun if not invalid(r)]):
                notes.append("medians of the %d clean runs" % len(rs))
            elif len(rs) > 0 and all(noisy(r) for r in rs):
                notes.append("**no clean run: rerun on a quiet machine**")
            notes += ["partly skipped: %s" % x for x in why]
            cells.append("; ".join(notes).replace("|", "\\|"))
            w("| " + " | ".join(cells) + " |")
        w("")
        if "cache" in opts:
            hits = [(k[9:], v) for k, v in meta.items() if k.startswith("cachehit_")]
            w("Checked for every target: before each run, the GET after the one that stored "
              "the response said %s; during the runs the backends must see ~0 requests "
              "(\"backend req\"). A run that fails either check is reported as FAILED and "
              "left out. The backends' CPU is not counted: it is ~0 for every target."
              % (", ".join("%s `%s`" % hv for hv in hits) if hits else "X-Cache-Status: HIT"))
            w("")
        if "nolat" in opts:
            w("wrk times a pipelined batch, not each request, and its percentiles are then "
              "unreliable: no latency is shown for this scenario.")
            w("")

    # What reached the backends through each target, checked once per target.
    echo = [(k[5:], v) for k, v in meta.items() if k.startswith("echo_")]
    if echo:
        w("## Forwarded headers seen by the backend")
        w("")
        w("| target | backend saw |")
        w("|---|---|")
        for t, v in echo:
            w("| %s | `%s` |" % (t, v))
        w("")

    w("## Every run")
    w("")
    w("foreign = CPU busy (/proc/stat) minus our own processes (target, backends, wrk, speed "
      "sampler), in % of one CPU, for the whole machine and (pinned mode) for CPU 0 / CPU 1; "
      "ref = speed-reference loop before→after (mean during the run), µs; be req = requests "
      "each backend counted (stub_status; in the slow scenario the second is the demo "
      "backend's /__stats); be conns = new backend connections; statuses = exact count per "
      "HTTP status (bench/wrk/status.lua, 429 scenario).")
    w("")
    w("| scenario | target | rep | req/s | p50 ms | p99 ms | CPU µs/req | CPU % | CPU0 % | CPU1 % "
      "| foreign % (all; CPU0/CPU1) | ref µs | RSS MB | be req | be conns | statuses | flags |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|---|---|---|")
    for r in runs:
        st = r.get("statuses")
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["scenario"], r["target"], r["rep"], fmt_int(r["rps"]), fmt_ms(r["p50_us"]),
            fmt_ms(r["p99_us"]), fmt_f(r["cpu_us_req"]), fmt_f(r["proxy_cpu_pct"], 0),
            fmt_f(r["cpu0_busy_pct"], 0), fmt_f(r["cpu1_busy_pct"], 0), fmt_foreign(r),
            fmt_ref(r), fmt_f(r["rss_mb"]),
            "/".join(fmt_int(x) for x in r["be_req"]), "/".join(fmt_int(x) for x in r["be_conn"]),
            " ".join("%s=%s" % (k, st[k]) for k in sorted(st)) if st else "—",
            "; ".join(r["flags"]).replace("|", "\\|")))
    w("")
    nn = sum(1 for r in runs if noisy(r))
    if nn:
        w("**%d of %d runs had foreign load** (flags above); they are left out of the medians "
          "where the target has clean runs. Rerun when the machine is quiet if a figure "
          "matters." % (nn, len(runs)))
        w("")
    notes = meta.get("notes", "")
    if notes:
        w("Notes: " + notes)
        w("")
    sys.stdout.write("\n".join(p))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("record", "report"):
        sys.stderr.write(__doc__)
        return 2
    if sys.argv[1] == "record":
        cmd_record(sys.argv[2:])
    else:
        cmd_report(sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
