#!/usr/bin/env python3
"""report.py - the arithmetic and the markdown of bench/resp/run.sh.

  report.py record RUNS.jsonl key=value...   one redis-benchmark invocation:
                                             derive its figures, append them
                                             as a JSON line, print a summary
  report.py report DIR                       the markdown report of
                                             DIR/runs.jsonl with DIR/meta.tsv

Standard library only (python3 >= 3.7).
"""

import csv
import json
import os
import re
import statistics
import sys

FOREIGN_MAX_PCT = 10.0      # as bench/wrk/report.py
SPEED_DRIFT_MAX = 0.30
BOUND_PCT = 90.0
TIE = 0.15
NOISE_FLAGS = ("foreign load",)
ORDER = ("ringfront", "redis")
LABEL = {"ringfront": "ringfront `[cache] listen`", "redis": "redis-server"}


def noisy(r):
    return any(f.startswith(NOISE_FLAGS) for f in r["flags"])


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _times_children(path):
    """bash `times`: the second line is the CPU of the shell's reaped children."""
    lines = _read(path).split("\n")
    tot = 0.0
    if len(lines) > 1:
        for part in lines[1].split():
            m = re.fullmatch(r"(\d+)m([0-9.]+)s", part)
            if m:
                tot += int(m.group(1)) * 60 + float(m.group(2))
    return tot


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def derive(raw):
    r = {k: raw[k] for k in ("target", "test", "mode")}
    r["pipeline"] = int(raw["pipeline"])
    r["rep"] = int(raw["rep"])
    n = int(raw["n"])
    r["n"] = n
    hz = float(raw.get("clk_tck", 100))
    window = float(raw["t1"]) - float(raw["t0"])
    r["window_s"] = window
    tk = lambda k: float(raw[k + "1"]) - float(raw[k + "0"])  # noqa: E731

    # redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms",
    # "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    r["rps"] = r["avg_ms"] = r["p50_ms"] = r["p99_ms"] = None
    rows = list(csv.reader(_read(raw["csv"]).splitlines()))
    head = rows[0] if rows else []
    for row in rows[1:]:
        if row and row[0].upper() == raw["test"].upper():
            d = dict(zip(head, row))
            for key, col in (("rps", "rps"), ("avg_ms", "avg_latency_ms"),
                             ("p50_ms", "p50_latency_ms"), ("p99_ms", "p99_latency_ms")):
                try:
                    r[key] = float(d[col])
                except (KeyError, ValueError):
                    pass
    err_lines = [l.strip() for l in _read(raw["err"]).splitlines() if l.strip()]
    r["stderr"] = err_lines[:5]
    r["errors"] = sum(1 for l in err_lines if re.search(r"error", l, re.I))
    r["rc"] = _int(raw.get("rc"))

    server_s = tk("ticks") / hz
    ref_s = tk("ref_ticks") / hz
    client_s = _times_children(raw["times1"]) - _times_children(raw["times0"])
    r["server_cpu_s"] = server_s
    r["client_cpu_s"] = client_s
    r["cpu_us_req"] = server_s * 1e6 / n if n else None
    r["server_cpu_pct"] = 100.0 * server_s / window if window > 0 else None
    r["client_cpu_pct"] = 100.0 * client_s / window if window > 0 else None
    r["rss_mb"] = float(raw.get("rss_kb") or 0) / 1024.0
    busy_all = tk("busy_all") / hz
    r["foreign_pct"] = 100.0 * (busy_all - server_s - client_s - ref_s) / window
    r["cpu0_busy_pct"] = 100.0 * tk("busy_cpu0") / hz / window
    r["cpu1_busy_pct"] = 100.0 * tk("busy_cpu1") / hz / window
    if raw.get("mode") == "pinned":
        r["cpu0_foreign_pct"] = r["cpu0_busy_pct"] - 100.0 * (server_s + ref_s) / window
        r["cpu1_foreign_pct"] = r["cpu1_busy_pct"] - 100.0 * client_s / window
        relevant = max(r["cpu0_foreign_pct"], r["cpu1_foreign_pct"])
    else:
        r["cpu0_foreign_pct"] = r["cpu1_foreign_pct"] = None
        relevant = r["foreign_pct"]

    # What the server counted: SETs (ringfront: inserts; redis: commandstats)
    # or GETs (keyspace hits + misses), against the requests sent.
    key = "sets" if raw["test"] == "set" else "gets"
    a, b = _int(raw.get(key + "0")), _int(raw.get(key + "1"))
    r["counted"] = b - a if a is not None and b is not None else None
    h0, h1 = _int(raw.get("hits0")), _int(raw.get("hits1"))
    r["hit_share"] = (h1 - h0) / float(n) if raw["test"] == "get" and h0 is not None and h1 is not None else None
    r["keys"] = _int(raw.get("keys"))

    ref0, ref1 = float(raw.get("ref0") or 0), float(raw.get("ref1") or 0)
    during = [float(x) for x in _read(raw.get("ref_during", "")).split() if x.strip().isdigit()]
    r["ref_before_us"], r["ref_after_us"] = ref0, ref1
    r["ref_during_us"] = statistics.mean(during) if during else None

    flags, check = [], False
    if r["rc"] not in (0, None):
        flags.append("redis-benchmark exit %s" % r["rc"])
        check = True
    if r["rps"] is None:
        flags.append("no %s row in redis-benchmark's CSV" % raw["test"].upper())
        check = True
    if r["errors"]:
        flags.append("%d error line(s) from redis-benchmark: %s" % (r["errors"], err_lines[0][:120]))
        check = True
    if r["counted"] is None:
        flags.append("server counts unreadable (INFO)")
        check = True
    elif r["counted"] != n:
        flags.append("server counted %d %ss of %d sent" % (r["counted"], raw["test"].upper(), n))
        check = True
    if relevant > FOREIGN_MAX_PCT:
        if r["cpu0_foreign_pct"] is None:
            flags.append("foreign load %.0f%%" % r["foreign_pct"])
        else:
            flags.append("foreign load %.0f%%/%.0f%% on CPU0/1" % (r["cpu0_foreign_pct"], r["cpu1_foreign_pct"]))
    if ref0 > 0 and ref1 > 0 and abs(ref1 - ref0) / min(ref0, ref1) > SPEED_DRIFT_MAX:
        flags.append("speed drift %.0f%%" % (100 * abs(ref1 - ref0) / min(ref0, ref1)))
    r["flags"] = flags
    r["check_failed"] = check
    cap = 100.0 * float(raw.get("proxy_cpus", 1))
    if r["server_cpu_pct"] is not None and r["server_cpu_pct"] >= BOUND_PCT * cap / 100.0:
        r["bound"] = "server"
    elif raw.get("mode") == "pinned" and r["cpu1_busy_pct"] >= BOUND_PCT:
        r["bound"] = "client (CPU1)"
    else:
        r["bound"] = "?"
    return r


def f1(v, nd=1):
    return "—" if v is None else ("{:,.%df}" % nd).format(v)


def one_line(r):
    s = "%-9s P%-3d %-3s #%d %11s req/s  p50 %s ms  p99 %s ms  %s µs/req  CPU %s%%  RSS %s MB" % (
        r["target"], r["pipeline"], r["test"].upper(), r["rep"], f1(r["rps"], 0), f1(r["p50_ms"], 3),
        f1(r["p99_ms"], 3), f1(r["cpu_us_req"], 2), f1(r["server_cpu_pct"], 0), f1(r["rss_mb"]))
    if r["hit_share"] is not None:
        s += "  hits %.1f%%" % (100 * r["hit_share"])
    if r["flags"]:
        s += "  [" + "; ".join(r["flags"]) + "]"
    return s


def cmd_record(argv):
    raw = dict(kv.partition("=")[::2] for kv in argv[1:])
    r = derive(raw)
    with open(argv[0], "a") as f:
        f.write(json.dumps(r, sort_keys=True) + "\n")
    print(one_line(r))


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def verdict(x):
    x = round(x, 2)
    if abs(x - 1.0) <= TIE:
        return "tie"
    return "better" if x < 1.0 else "worse"


def cmd_report(argv):
    d = argv[0]
    meta = {}
    for line in _read(os.path.join(d, "meta.tsv")).splitlines():
        k, _, v = line.partition("\t")
        meta[k] = v
    runs = [json.loads(l) for l in _read(os.path.join(d, "runs.jsonl")).splitlines() if l.strip()]
    p = []
    w = p.append
    w("# ringfront benchmark: Redis protocol against redis-server — %s" % meta.get("date", "?"))
    w("")
    w("| | |")
    w("|---|---|")
    for k, label in (("command", "command"), ("mode", "mode"), ("host", "machine"),
                     ("ringfront", "ringfront"), ("redis", "Redis"), ("load", "load"),
                     ("repeat", "repeats"), ("elapsed", "time")):
        if meta.get(k):
            w("| %s | %s |" % (label, meta[k].replace("|", "\\|")))
    refs = [r["ref_during_us"] for r in runs if r.get("ref_during_us")]
    if refs:
        w("| CPU speed reference | %s µs at start; during the runs min %s / median %s / max %s µs "
          "(bench/wrk/cpuref.c on CPU 0; lower is faster) |" % (
              meta.get("ref_start", "?"), f1(min(refs), 0), f1(statistics.median(refs), 0), f1(max(refs), 0)))
    w("")
    w("Each row: `redis-benchmark -t TEST` run on its own against a server that ran nothing "
      "else (SET first, then GET, on a server started empty for each pipelining mode). "
      "req/s and latency from its CSV; CPU µs/req = utime+stime of the server's whole "
      "process tree (all threads) ÷ requests; CPU %% = that tree's share of one CPU. "
      "**ringfront ÷ redis** = ringfront's CPU µs/req ÷ redis-server's, per repeat, median "
      "(range); within ±%.2f of 1.0 is a tie. req/s ratio likewise (higher is better). "
      "\"counted\" = the commands the server itself counted (INFO), which must equal -n; "
      "\"keys/hits\" = keys held after SET, share of GETs that found their key." % TIE)
    w("")
    for t in ORDER:
        if meta.get("skip_" + t):
            w("**%s skipped**: %s" % (t, meta["skip_" + t]))
            w("")
        if meta.get("fail_" + t):
            w("**%s FAILED to start**: %s" % (t, meta["fail_" + t]))
            w("")

    modes = sorted({r["pipeline"] for r in runs})
    for pl in modes:
        for test in ("set", "get"):
            sr = [r for r in runs if r["pipeline"] == pl and r["test"] == test]
            if not sr:
                continue
            w("## %s, %s" % (test.upper(), "no pipelining" if pl == 1 else "pipelined, -P %d" % pl))
            w("")
            w("| server | req/s | p50 ms | p99 ms | CPU µs/req | CPU % | RSS MB | counted | keys / hits "
              "| ringfront ÷ redis CPU µs/req | ringfront ÷ redis req/s | limited by | ref µs | notes |")
            w("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|--:|---|")
            by_t, all_t = {}, {}
            for r in sr:
                all_t.setdefault(r["target"], []).append(r)
            for t, rs in all_t.items():
                valid = [r for r in rs if not r["check_failed"]]
                by_t[t] = [r for r in valid if not noisy(r)] or valid

            def ratio(key):
                out = []
                for rep in sorted({r["rep"] for r in sr}):
                    a = [r[key] for r in by_t.get("ringfront", []) if r["rep"] == rep]
                    b = [r[key] for r in by_t.get("redis", []) if r["rep"] == rep]
                    if a and b and a[0] and b[0]:
                        out.append(a[0] / b[0])
                if not out:
                    ma = med([r[key] for r in by_t.get("ringfront", [])])
                    mb = med([r[key] for r in by_t.get("redis", [])])
                    if ma and mb:
                        out.append(ma / mb)
                return out

            for t in ORDER:
                rs = by_t.get(t)
                every = all_t.get(t, [])
                if not rs and every:
                    w("| %s | " % LABEL[t] + " | ".join(["—"] * 12) + " | **FAILED** every run: %s |"
                      % "; ".join(sorted({f for r in every for f in r["flags"]})).replace("|", "\\|"))
                    continue
                if not rs:
                    continue
                cells = [LABEL[t], f1(med([r["rps"] for r in rs]), 0), f1(med([r["p50_ms"] for r in rs]), 3),
                         f1(med([r["p99_ms"] for r in rs]), 3), f1(med([r["cpu_us_req"] for r in rs]), 2),
                         f1(med([r["server_cpu_pct"] for r in rs]), 0), f1(med([r["rss_mb"] for r in rs])),
                         "%s/%s" % (f1(med([r["counted"] for r in rs]), 0), f1(rs[0]["n"], 0))]
                if test == "get":
                    hs = med([r["hit_share"] for r in rs])
                    cells.append("—" if hs is None else "%.1f%% hits" % (100 * hs))
                else:
                    cells.append(f1(med([r["keys"] for r in rs]), 0) + " keys")
                if t == "ringfront":
                    for key, judge in (("cpu_us_req", True), ("rps", False)):
                        rr = ratio(key)
                        if rr:
                            m = statistics.median(rr)
                            c = "**%.2f**" % m + (" " + verdict(m) if judge else "")
                            if len(rr) > 1:
                                c += " (%.2f–%.2f)" % (min(rr), max(rr))
                            cells.append(c)
                        else:
                            cells.append("—")
                else:
                    cells += ["—", "—"]
                cells.append("/".join(sorted({r["bound"] for r in rs})))
                cells.append(f1(med([r["ref_during_us"] for r in rs]), 0))
                notes = []
                seen = {}
                for r in every:
                    for fl in r["flags"]:
                        seen.setdefault(re.sub(r"[0-9]+(?:\.[0-9]+)?%?", "#", fl), []).append(fl)
                for fl in seen.values():
                    notes.append("%s (%d/%d runs)" % (fl[0], len(fl), len(every)) if len(every) > 1 else fl[0])
                nfail = sum(1 for r in every if r["check_failed"])
                if nfail:
                    notes.append("**%d run(s) FAILED a check**, left out" % nfail)
                if len(rs) < len(every) - nfail:
                    notes.append("medians of the %d clean runs" % len(rs))
                elif all(noisy(r) for r in rs):
                    notes.append("**no clean run: rerun on a quiet machine**")
                cells.append("; ".join(notes).replace("|", "\\|"))
                w("| " + " | ".join(cells) + " |")
            w("")

    w("## Every run")
    w("")
    w("| server | -P | test | rep | req/s | p50 ms | p99 ms | CPU µs/req | CPU % | client CPU % "
      "| CPU0 % | CPU1 % | foreign % (all; CPU0/CPU1) | ref µs before→after (during) | counted | keys | hits | flags |")
    w("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|---|")
    for r in runs:
        fo = f1(r["foreign_pct"], 0)
        if r.get("cpu0_foreign_pct") is not None:
            fo += "; %s/%s" % (f1(r["cpu0_foreign_pct"], 0), f1(r["cpu1_foreign_pct"], 0))
        w("| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s→%s (%s) | %s | %s | %s | %s |" % (
            r["target"], r["pipeline"], r["test"].upper(), r["rep"], f1(r["rps"], 0), f1(r["p50_ms"], 3),
            f1(r["p99_ms"], 3), f1(r["cpu_us_req"], 2), f1(r["server_cpu_pct"], 0), f1(r["client_cpu_pct"], 0),
            f1(r["cpu0_busy_pct"], 0), f1(r["cpu1_busy_pct"], 0), fo, f1(r["ref_before_us"], 0),
            f1(r["ref_after_us"], 0), f1(r["ref_during_us"], 0), f1(r["counted"], 0), f1(r["keys"], 0),
            "—" if r["hit_share"] is None else "%.1f%%" % (100 * r["hit_share"]),
            "; ".join(r["flags"]).replace("|", "\\|")))
    w("")
    errs = {}
    for r in runs:
        for l in r.get("stderr", []):
            errs.setdefault((r["target"], l), 0)
            errs[(r["target"], l)] += 1
    if errs:
        w("redis-benchmark's stderr (first lines of each run, counted over the runs):")
        w("")
        for (t, l), c in sorted(errs.items()):
            w("- %s: `%s` (%d×)" % (t, l.replace("`", "'")[:200], c))
        w("")
    failed = [r for r in runs if r["check_failed"]]
    if failed:
        w("**%d run(s) FAILED a check** (server errors, or the server did not count every "
          "command sent): their figures do not measure what they should, and they are "
          "left out of the medians." % len(failed))
        w("")
    nn = sum(1 for r in runs if noisy(r))
    if nn:
        w("**%d of %d runs had foreign load**; they are left out of the medians where the "
          "server has clean runs." % (nn, len(runs)))
        w("")
    other = [(k, v) for k, v in meta.items() if k.startswith(("note_", "crash_"))]
    if other:
        w("Notes: " + "; ".join("%s: %s" % kv for kv in other))
        w("")
    sys.stdout.write("\n".join(p))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("record", "report"):
        sys.stderr.write(__doc__)
        return 2
    (cmd_record if sys.argv[1] == "record" else cmd_report)(sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
