"""test_cluster.py - two ringfront instances sharing one real redis-server
([cluster]): a global limit holds across both within the stated overshoot,
a client created or blocked on one is enforced on the other within a
second, a cache purge on one empties the other's entry, and killing Redis
under load changes nothing for the clients (local limits) until it comes
back and the instances rejoin. Skips when redis-server is missing."""
import json
import shutil
import signal
import threading
import time

from harness import (Backend, Conn, Proc, Ringfront, TestFailure, build_request, check,
                     free_port, request, wait_port)

REDIS = shutil.which("redis-server")
LEASE = 5
SYNC_MS = 50


class Redis(Proc):
    """A redis-server of the test's own on a free loopback port."""

    def __init__(self, port=None, args=()):
        if not REDIS:
            raise TestFailure("redis-server is not installed (tools/install-deps.sh test)")
        self.port = port or free_port()
        super().__init__([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--daemonize", "no"] + list(args))
        wait_port(self.port, proc=self)

    def kill(self):
        """SIGKILL by PID: Redis dies the way a crashed server does."""
        self.signal(signal.SIGKILL)
        self.p.wait(5)


def cluster_ini(backend, redis_port, name, rl="rate = 20/60s\nburst = 20", extra=""):
    port, aport = free_port(), free_port()
    rl = "[ratelimit]\n" + rl if rl else ""
    redis = "127.0.0.1:%d" % redis_port if isinstance(redis_port, int) else redis_port
    ini = ("[server]\nlisten = 127.0.0.1:%d\nworkers = 2\nlog_level = info\n"
           "[upstream app]\nservers = %s\nhealth_path =\n"
           "[admin]\nlisten = 127.0.0.1:%d\n"
           "%s\n"
           "[cluster]\nredis = %s\ninstance = %s\nsync_interval = %dms\n"
           "lease = %d\ntimeout = 300ms\n%s" % (port, backend.addr, aport, rl, redis, name,
                                                SYNC_MS, LEASE, extra))
    rf = Ringfront(ini)
    rf.aport = aport
    return rf


def admin(rf, method, path, body=None):
    r = request(rf.aport, method, path,
                body=json.dumps(body) if body is not None else None)
    return r


def stats(rf):
    return admin(rf, "GET", "/stats").json()["cluster"]


def wait_for(cond, timeout, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def joined(*rfs):
    return all(stats(rf)["connected"] for rf in rfs)


def hammer_log(port, end, log):
    """Requests on one keep-alive connection until <end>: (time, status)."""
    c = Conn(port)
    req = build_request("GET", "/x")
    while time.time() < end:
        try:
            c.send(req)
            st = c.read_response().status
        except (OSError, EOFError):
            st = "conn-error"
            c.close()
            c = Conn(port)
        log.append((time.time(), st))
    c.close()


def load(rfs, seconds, per=2):
    """<per> keep-alive clients on each instance for <seconds>: counts by status."""
    logs = [[] for _ in rfs for _ in range(per)]
    end = time.time() + seconds
    ts = [threading.Thread(target=hammer_log, args=(rf.port, end, log))
          for rf, log in zip([rf for rf in rfs for _ in range(per)], logs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 20)
    total = {}
    for log in logs:
        for _, st in log:
            total[st] = total.get(st, 0) + 1
    return total


def stack(rl="rate = 20/60s\nburst = 20", extra=""):
    r = Redis()
    b = Backend()
    a = cluster_ini(b, r.port, "node-a", rl, extra)
    bb = cluster_ini(b, r.port, "node-b", rl, extra)
    check(wait_for(lambda: joined(a, bb), 5), "instances did not join: %s %s" % (stats(a), stats(bb)))
    return r, b, a, bb


def stop_all(*procs):
    for p in procs:
        p.stop()


def test_global_limit_within_the_overshoot_bound():
    """N per minute across both instances, under load on both: at most
    burst + rate * t + lease * instances (README: Running several instances)."""
    n = 20
    r, b, a, bb = stack("rate = %d/60s\nburst = %d" % (n, n))
    t0 = time.time()
    got = load([a, bb], 3.0)
    t = time.time() - t0
    admitted = sum(v for k, v in got.items() if k != 429)
    bound = n + n * t / 60 + LEASE * 2
    check(got.get(429, 0) > 100, "too little load to test: %s" % got)
    check(set(got) <= {404, 429}, "unexpected answers: %s" % got)
    check(admitted <= bound, "admitted %d across both, bound %.1f: %s" % (admitted, bound, got))
    # and the limit is not simply per instance: one alone would admit n
    check(admitted < 2 * n, "admitted %d: not shared" % admitted)
    check(admitted >= n - 1, "admitted only %d of %d" % (admitted, n))
    sa, sb = stats(a), stats(bb)
    check(sa["granted"] + sb["granted"] > 0 and sa["keys"] >= 1 and sb["keys"] >= 1, (sa, sb))
    stop_all(a, bb, b, r)


def test_client_created_on_a_is_enforced_on_b_within_a_second():
    r, b, a, bb = stack("rate = 1000/1s\nburst = 1000\nkey = header:X-API-Key")
    t0 = time.time()
    res = admin(a, "POST", "/clients", {"client_id": "k1", "capacity": 3, "rate_per_sec": 0.01})
    check(res.status == 201, res)
    seen = wait_for(lambda: admin(bb, "GET", "/clients/k1").status == 200, 2.0, 0.01)
    dt = time.time() - t0
    check(seen and dt <= 1.0, "B knew k1 after %.2fs" % dt)
    c = admin(bb, "GET", "/clients/k1").json()
    check(c["capacity"] == 3 and abs(c["rate_per_sec"] - 0.01) < 1e-9, c)
    codes = [request(bb.port, "GET", "/x", headers={"X-API-Key": "k1"}).status for _ in range(6)]
    check(codes[:3] == [404] * 3 and codes[3:] == [429] * 3, codes)
    # a block on B reaches A; an unblock and a delete too
    check(admin(bb, "POST", "/block", {"client_id": "k1"}).status == 200)
    check(wait_for(lambda: request(a.port, "GET", "/x", headers={"X-API-Key": "k1"}).status == 403,
                   1.0), "block did not reach A")
    check(admin(bb, "POST", "/unblock", {"client_id": "k1"}).status == 200)
    check(admin(bb, "DELETE", "/clients/k1").status == 204)
    check(wait_for(lambda: admin(a, "GET", "/clients/k1").status == 404, 1.0),
          "delete did not reach A")
    # a third instance started later loads the state from Redis
    admin(a, "POST", "/clients", {"client_id": "k2", "capacity": 7})
    check(wait_for(lambda: admin(bb, "GET", "/clients/k2").status == 200, 1.0))
    c3 = cluster_ini(b, r.port, "node-c", "rate = 1000/1s\nburst = 1000\nkey = header:X-API-Key")
    check(wait_for(lambda: admin(c3, "GET", "/clients/k2").status == 200, 2.0),
          "a new instance did not load k2")
    check(admin(c3, "GET", "/clients/k2").json()["capacity"] == 7)
    stop_all(a, bb, c3, b, r)


def test_purge_on_a_empties_b():
    r, b, a, bb = stack(None, extra="[cache]\nmemory = 8m\n")
    for rf in (a, bb):
        request(rf.port, "GET", "/cache/one")
        request(rf.port, "GET", "/cache/two")
        x = request(rf.port, "GET", "/cache/one")
        check(x.header("X-Cache-Status") == "HIT", x)
    t0 = time.time()
    res = admin(a, "POST", "/cache/purge", {"key": "http://localhost:80/cache/one"})
    check(res.status == 200, res)
    check(wait_for(lambda: request(bb.port, "GET", "/cache/one").header("X-Cache-Status") == "MISS",
                   1.0, 0.02), "B still holds the entry after %.2fs" % (time.time() - t0))
    x = request(bb.port, "GET", "/cache/two")
    check(x.header("X-Cache-Status") == "HIT", "B lost /cache/two: %s" % x)
    check(admin(a, "POST", "/cache/purge", {"all": True}).status == 200)
    check(wait_for(lambda: request(bb.port, "GET", "/cache/two").header("X-Cache-Status") == "MISS",
                   1.0, 0.02), "purge all did not reach B")
    check(stats(bb)["purges_applied"] >= 2, stats(bb))
    stop_all(a, bb, b, r)


def test_redis_killed_under_load_then_back():
    # a limit the load stays under: with Redis gone, every answer must be
    # the backend's (leases still warming up in the first moments may 429)
    r, b, a, bb = stack("rate = 100000/1s\nburst = 100000")
    port = r.port
    logs = [[], []]
    end = time.time() + 4.0
    ts = [threading.Thread(target=hammer_log, args=(rf.port, end, log))
          for rf, log in zip((a, bb), logs)]
    for t in ts:
        t.start()
    time.sleep(1.0)
    t_kill = time.time()
    r.kill()
    check(wait_for(lambda: not stats(a)["connected"] and not stats(bb)["connected"], 2.0),
          "the instances did not notice")
    t_noticed = time.time()
    s = stats(a)
    check(s["fallback_active"] and s["last_error"], s)
    m = admin(a, "GET", "/metrics").body.decode()
    check("ringfront_cluster_fallback_active 1" in m, m[-500:])
    for t in ts:
        t.join(30)
    for log in logs:
        outage = [st for (t, st) in log if t >= t_kill]
        bad = [st for st in outage if st != 404]
        check(len(outage) > 100, "too little load during the outage: %d" % len(outage))
        check(not bad, "%d of %d requests failed while Redis was down (noticed after %.3fs): %s"
              % (len(bad), len(outage), t_noticed - t_kill, sorted(set(bad), key=str)))
        check(all(st in (404, 429) for (t, st) in log), sorted({st for _, st in log}, key=str))
    # Redis returns (empty, on the same port): both rejoin in bounded time
    r2 = Redis(port)
    t0 = time.time()
    check(wait_for(lambda: joined(a, bb), 8.0), "did not rejoin: %s" % stats(a))
    dt = time.time() - t0
    check(dt < 8.0, dt)
    # and the limits are global again: leases are granted by the new Redis
    g0 = stats(a)["granted"]
    load([a], 0.5, per=1)
    check(wait_for(lambda: stats(a)["granted"] > g0, 2.0), stats(a))
    out = a.output()
    check(out.count("redis unreachable") == 1, "logged more than once:\n" + out[-2000:])
    check(out.count("cluster joined") == 2, out[-2000:])
    stop_all(a, bb, b, r2)


def test_fallback_deny_and_no_cluster_section():
    # deny: without Redis every limited request gets 429, nothing waits
    dead = free_port()
    b = Backend()
    rf = cluster_ini(b, dead, "lonely", "rate = 1000/1s\nburst = 1000", extra="fallback = deny\n")
    t0 = time.time()
    codes = [request(rf.port, "GET", "/x").status for _ in range(5)]
    check(codes == [429] * 5 and time.time() - t0 < 2.0, codes)
    s = stats(rf)
    check(not s["connected"] and s["fallback"] == "deny" and s["fallback_denied"] >= 5, s)
    rf.stop()
    # without [cluster]: no "cluster" in /stats
    aport = free_port()
    rf = Ringfront("[server]\nlisten = 127.0.0.1:%d\nworkers = 1\n[upstream app]\nservers = %s\n"
                   "health_path =\n[admin]\nlisten = 127.0.0.1:%d\n" % (free_port(), b.addr, aport))
    check("cluster" not in request(aport, "GET", "/stats").json())
    rf.stop()
    b.stop()


def test_failover_skips_dead_addresses_replicas_and_wrong_passwords():
    primary = Redis(args=("--requirepass", "s3cret"))
    replica = Redis(args=("--replicaof", "127.0.0.1", str(primary.port),
                          "--masterauth", "s3cret", "--requirepass", "s3cret"))
    b = Backend()
    # a dead address and a replica before the primary: it ends on the primary
    addrs = "127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d" % (free_port(), replica.port, primary.port)
    rf = cluster_ini(b, addrs, "node-f", extra="password = s3cret\n")
    check(wait_for(lambda: joined(rf), 3.0), stats(rf))
    check(stats(rf)["redis"] == "127.0.0.1:%d" % primary.port, stats(rf))
    rf.stop()
    # a wrong password: not joined, and /stats says why
    rf = cluster_ini(b, primary.port, "node-g", extra="password = wrong\n")
    check(wait_for(lambda: "AUTH" in (stats(rf)["last_error"] or ""), 2.0), stats(rf))
    check(not stats(rf)["connected"])
    rf.stop()
    stop_all(b, replica, primary)


def test_services_and_strategy_reach_the_other_instance():
    """A service registered on A routes on B within a second; a strategy
    change and a server drain made on B reach A; a new instance loads them;
    deleting the service on A removes it from B."""
    r, b, a, bb = stack()
    extra = Backend()
    t0 = time.time()
    res = admin(a, "POST", "/services/orders", [extra.addr])
    check(res.status == 201, res)
    check(wait_for(lambda: admin(bb, "GET", "/services/orders").status == 200, 2.0, 0.01),
          "the service did not reach B")
    check(time.time() - t0 <= 1.0, "B knew the service after %.2fs" % (time.time() - t0))
    rr = request(bb.port, "GET", "/orders/x")
    check(rr.header("X-Handled-By") == "app-server-%d" % extra.port, rr)
    check(admin(bb, "POST", "/strategy", {"upstream": "app", "balance": "least_conn"}).status == 200)
    check(wait_for(lambda: admin(a, "GET", "/upstreams/app").json()["balance"] == "least_conn",
                   1.0), "the strategy did not reach A")
    res = admin(bb, "PATCH", "/upstreams/app/servers/%s" % b.addr, {"weight": 7})
    check(res.status == 200, res)
    check(wait_for(lambda: admin(a, "GET", "/upstreams/app/servers/%s" % b.addr).json()["weight"]
                   == 7, 1.0), "the weight did not reach A")
    c3 = cluster_ini(b, r.port, "node-c")
    check(wait_for(lambda: admin(c3, "GET", "/services/orders").status == 200 and
                   admin(c3, "GET", "/upstreams/app").json()["balance"] == "least_conn", 3.0),
          "a new instance did not load the state")
    check(admin(a, "DELETE", "/services/orders").status == 204)
    check(wait_for(lambda: admin(bb, "GET", "/services/orders").status == 404 and
                   admin(c3, "GET", "/services/orders").status == 404, 1.0),
          "the delete did not reach B and C")
    stop_all(a, bb, c3, b, extra, r)


def test_ban_on_a_reaches_b():
    """An automatic ban made on A (ban_after consecutive rejections) bans the
    key on B too within a second, for what is left of it."""
    r, b, a, bb = stack("rate = 2/60s\nburst = 2\nban_after = 3\nban_time = 120s")
    codes = [request(a.port, "GET", "/x").status for _ in range(8)]
    check(codes.count(429) >= 3, codes)
    check(admin(a, "GET", "/usage?key=127.0.0.1").json()["banned"], "A did not ban")
    check(wait_for(lambda: admin(bb, "GET", "/usage?key=127.0.0.1").json()["banned"], 1.0),
          "the ban did not reach B: %s" % admin(bb, "GET", "/usage?key=127.0.0.1").json())
    left = admin(bb, "GET", "/usage?key=127.0.0.1").json()["ban_left_s"]
    check(100 <= left <= 120, left)
    check(request(bb.port, "GET", "/x").status == 429)
    stop_all(a, bb, b, r)
