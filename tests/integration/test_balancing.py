"""test_balancing.py - strategies and health through the real binary:
weights, least_conn around a slow server, ip_hash stickiness, active
health checks taking a server out and back, a backend killed under load
without client errors, and max_conns with its priority queue."""
import json
import threading
import time

from harness import (Backend, Conn, RawBackend, Ringfront, build_request, check,
                     config, free_port, request, wait_until)


def handled_by(port, n, path="/users/1", headers=None):
    counts = {}
    c = Conn(port)
    for _ in range(n):
        c.send(build_request("GET", path, headers=headers))
        r = c.read_response()
        check(r.status == 200, r)
        k = r.header("X-Handled-By")
        counts[k] = counts.get(k, 0) + 1
    c.close()
    return counts


def test_weighted_three_to_one():
    b1, b2 = Backend(), Backend()
    rf = Ringfront(config(["%s weight=3" % b1.addr, b2.addr], upstream="balance = weighted"))
    counts = handled_by(rf.port, 400)
    n1 = counts.get("app-server-%d" % b1.port, 0)
    n2 = counts.get("app-server-%d" % b2.port, 0)
    check(n1 == 300 and n2 == 100, counts)
    rf.stop()


def test_round_robin_weights_apply():
    b1, b2 = Backend(), Backend()
    rf = Ringfront(config(["%s weight=2" % b1.addr, b2.addr], upstream="balance = round_robin"))
    counts = handled_by(rf.port, 300)
    n1 = counts.get("app-server-%d" % b1.port, 0)
    check(n1 > 150, counts)
    rf.stop()


def concurrent_load(port, clients, per_client, path="/users/1"):
    counts, errors = {}, []
    lock = threading.Lock()

    def run():
        try:
            c = Conn(port)
            for _ in range(per_client):
                c.send(build_request("GET", path))
                r = c.read_response()
                with lock:
                    if r.status != 200:
                        errors.append(r.status)
                    k = r.header("X-Handled-By")
                    counts[k] = counts.get(k, 0) + 1
            c.close()
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))

    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return counts, errors


def test_least_conn_and_least_time_avoid_slow_server():
    for strategy in ("least_conn", "least_time"):
        slow, fast = Backend("--delay-ms", "40"), Backend()
        rf = Ringfront(config([slow.addr, fast.addr], upstream="balance = %s" % strategy))
        counts, errors = concurrent_load(rf.port, 8, 25)
        check(not errors, errors[:3])
        ns = counts.get("app-server-%d" % slow.port, 0)
        nf = counts.get("app-server-%d" % fast.port, 0)
        check(nf > 3 * ns, "%s: slow %d fast %d" % (strategy, ns, nf))
        rf.stop()
        slow.stop()
        fast.stop()


def test_ip_hash_sticky():
    bs = [Backend() for _ in range(3)]
    rf = Ringfront(config([b.addr for b in bs], upstream="balance = ip_hash"))
    counts = handled_by(rf.port, 60)
    check(len(counts) == 1, "one client went to several servers: %s" % counts)
    rf.stop()


def stats(aport):
    return json.loads(request(aport, "GET", "/stats").body)


def test_active_health_checks_down_and_up():
    good = Backend()
    bad = Backend("--health-fail")
    aport = free_port()
    ini = config([good.addr, bad.addr],
                 upstream="health_path = /health\nhealth_interval = 200ms\nhealth_timeout = 100ms\nfall = 2\nrise = 2")
    ini = ini.replace("health_path =\n", "") + "[admin]\nlisten = 127.0.0.1:%d\n" % aport
    rf = Ringfront(ini)
    deadline = time.time() + 5
    state = None
    while time.time() < deadline:
        srv = [s for s in stats(aport)["upstreams"][0]["servers"] if s["address"] == bad.addr][0]
        state = srv["state"]
        if state == "down":
            break
        time.sleep(0.1)
    check(state == "down", "server with failing health not marked down: %s" % state)
    counts = handled_by(rf.port, 20)
    check(counts == {"app-server-%d" % good.port: 20}, counts)
    # the same port comes back healthy: rise brings it back
    port = bad.port
    bad.stop()
    bad = Backend(port=port)
    deadline = time.time() + 5
    while time.time() < deadline:
        srv = [s for s in stats(aport)["upstreams"][0]["servers"] if s["address"] == bad.addr][0]
        if srv["state"] == "up":
            break
        time.sleep(0.1)
    check(srv["state"] == "up", srv)
    counts = handled_by(rf.port, 20)
    check(len(counts) == 2, counts)
    rf.stop()


def test_backend_killed_under_load_no_client_errors():
    b1, b2 = Backend(), Backend()
    rf = Ringfront(config([b1.addr, b2.addr], upstream="max_retries = 2"))
    result = {}

    def load():
        result["v"] = concurrent_load(rf.port, 6, 150)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.2)
    b1.signal(9)
    t.join(60)
    counts, errors = result["v"]
    check(not errors, "clients saw errors: %s" % errors[:5])
    check(counts.get("app-server-%d" % b2.port, 0) > 0, counts)
    rf.stop()


# ---- max_conns and the queue ----

class CountingBackend:
    """A raw backend that answers after <delay(target)> seconds and records
    the order requests arrived in and the most it held at once."""

    def __init__(self, delay):
        self.delay = delay
        self.lock = threading.Lock()
        self.cur = self.peak = 0
        self.order = []
        self.raw = RawBackend(self.handle)
        self.addr = self.raw.addr

    def handle(self, bc):
        while True:
            req = bc.read_request(timeout=30)
            if req is None:
                return
            target = req.target.decode()
            with self.lock:
                self.cur += 1
                self.peak = max(self.peak, self.cur)
                self.order.append(target)
            time.sleep(self.delay(target))
            with self.lock:
                self.cur -= 1
            body = target.encode()
            bc.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def admin_ini(ini):
    aport = free_port()
    return ini + "[admin]\nlisten = 127.0.0.1:%d\n" % aport, aport


def parallel(port, paths, headers=None, stagger=0.0):
    """GET every path from its own connection and thread (started <stagger>
    seconds apart). Returns [(path, Response or exception, seconds)]."""
    out = [None] * len(paths)

    def run(i):
        t0 = time.time()
        try:
            r = request(port, "GET", paths[i], headers=(headers or {}).get(paths[i]))
        except Exception as e:  # noqa: BLE001
            r = e
        out[i] = (paths[i], r, time.time() - t0)

    ts = []
    for i in range(len(paths)):
        ts.append(threading.Thread(target=run, args=(i,)))
        ts[-1].start()
        time.sleep(stagger)
    for t in ts:
        t.join(30)
    return out


def queue_stats(aport):
    return stats(aport)["upstreams"][0]["queue"]


def test_max_conns_caps_backend_concurrency():
    for workers in (1, 2):
        b = CountingBackend(lambda t: 0.3)
        rf = Ringfront(config([b.addr + " max_conns=2"], upstream="queue_size = 10",
                              workers=workers))
        t0 = time.time()
        res = parallel(rf.port, ["/r%d" % i for i in range(6)])
        dt = time.time() - t0
        bad = [(p, r) for p, r, _ in res if not hasattr(r, "status") or r.status != 200]
        check(not bad, "workers=%d: %s" % (workers, bad))
        check(b.peak == 2, "workers=%d: the backend held %d at once" % (workers, b.peak))
        check(sorted(b.order) == sorted(p for p, _, _ in res), b.order)
        check(dt >= 0.85, "workers=%d: 6 requests 2 at a time took only %.2fs" % (workers, dt))
        rf.stop()
        b.raw.close()


def test_queue_full_503_with_retry_after():
    for workers in (1, 2):
        b = Backend()
        ini, aport = admin_ini(config([b.addr], upstream="max_conns = 1\nqueue_size = 2",
                                      workers=workers))
        rf = Ringfront(ini)
        res = parallel(rf.port, ["/slow/1000"] * 6)
        ok = [r for _, r, _ in res if getattr(r, "status", 0) == 200]
        busy = [(r, dt) for _, r, dt in res if getattr(r, "status", 0) == 503]
        check(len(ok) == 3 and len(busy) == 3, "workers=%d: %s" % (workers, res))
        for r, dt in busy:
            check(dt < 0.5, "workers=%d: a 503 took %.2fs" % (workers, dt))
            check(r.json() == {"code": 503,
                               "message": "all servers are busy and the queue is full"}, r)
            check(r.header("Retry-After") == "5", r)
        q = queue_stats(aport)
        check(q["rejected"] == 3 and q["served"] == 2 and q["length"] == 0, q)
        rf.stop()
        b.stop()


def test_no_queue_503_at_once():
    b = Backend()
    rf = Ringfront(config([b.addr], upstream="max_conns = 1"))
    res = parallel(rf.port, ["/slow/800", "/users/1"], stagger=0.2)
    check(res[0][1].status == 200, res)
    r, dt = res[1][1], res[1][2]
    check(r.status == 503 and dt < 0.3, (r, dt))
    check(r.json()["message"] == "all servers are at max_conns" and r.header("Retry-After"), r)
    rf.stop()


def test_queue_timeout_503():
    b = Backend()
    ini, aport = admin_ini(config([b.addr], upstream="max_conns = 1\nqueue_size = 5\n"
                                  "queue_timeout = 300ms"))
    rf = Ringfront(ini)
    res = parallel(rf.port, ["/slow/1500", "/users/1"], stagger=0.1)
    check(res[0][1].status == 200, res)
    r, dt = res[1][1], res[1][2]
    check(r.status == 503 and 0.25 < dt < 1.0, (r, dt))
    check(r.json() == {"code": 503, "message": "timed out waiting for a free server"}, r)
    check(r.header("Retry-After") == "1", r)
    q = queue_stats(aport)
    check(q["timeouts"] == 1 and q["length"] == 0, q)
    metrics = request(aport, "GET", "/metrics").body.decode()
    check('ringfront_upstream_queue_timeouts_total{upstream="app"} 1' in metrics, metrics[-600:])
    # the connection survives a 503 from the queue
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/2"))
    check(c.read_response().status == 200)
    c.close()
    rf.stop()


def test_queue_priority_order():
    prios = [("/p1", "1"), ("/p5", "5"), ("/p3", "3"), ("/p9", "9"), ("/p5b", "5"),
             ("/pn", None)]
    for workers in (1, 2):
        b = CountingBackend(lambda t: 1.0 if t == "/hold" else 0.02)
        rf = Ringfront(config([b.addr], workers=workers, upstream=(
            "max_conns = 1\nqueue_size = 10\nqueue_priority_header = X-Priority")))
        hdrs = {p: ({"X-Priority": v} if v else {}) for p, v in prios}
        res = parallel(rf.port, ["/hold"] + [p for p, _ in prios], headers=hdrs, stagger=0.08)
        check(all(getattr(r, "status", 0) == 200 for _, r, _ in res), res)
        check(b.order == ["/hold", "/p9", "/p5", "/p5b", "/p3", "/p1", "/pn"],
              "workers=%d: served in order %s" % (workers, b.order))
        check(b.peak == 1, b.peak)
        rf.stop()
        b.raw.close()


def test_queue_priority_from_tier():
    b = CountingBackend(lambda t: 0.8 if t == "/hold" else 0.02)
    ini = config([b.addr], upstream="max_conns = 1\nqueue_size = 10") + (
        "[ratelimit]\nkey = header:X-API-Key\nrate = 1000/s\nburst = 1000\n"
        "[tier free]\nrate = 1000/s\n[tier gold]\nrate = 1000/s\npriority = 10\n"
        "[api_keys]\nfree-key = free\ngold-key = gold\n")
    rf = Ringfront(ini)
    hdrs = {"/free": {"X-API-Key": "free-key"}, "/gold": {"X-API-Key": "gold-key"}}
    res = parallel(rf.port, ["/hold", "/free", "/anon", "/gold"], headers=hdrs, stagger=0.1)
    check(all(getattr(r, "status", 0) == 200 for _, r, _ in res), res)
    check(b.order == ["/hold", "/gold", "/free", "/anon"], b.order)
    rf.stop()


def test_queued_client_close_frees_its_place():
    b = CountingBackend(lambda t: 1.0 if t == "/hold" else 0.01)
    ini, aport = admin_ini(config([b.addr], upstream="max_conns = 1\nqueue_size = 1"))
    rf = Ringfront(ini)
    held = threading.Thread(target=lambda: request(rf.port, "GET", "/hold"))
    held.start()
    time.sleep(0.1)
    gone = Conn(rf.port)
    gone.send(build_request("GET", "/gone"))
    check(wait_until(lambda: queue_stats(aport)["length"] == 1), queue_stats(aport))
    gone.close()
    check(wait_until(lambda: queue_stats(aport)["length"] == 0), queue_stats(aport))
    # its place is free again: the next request waits instead of a 503
    r = request(rf.port, "GET", "/next")
    check(r.status == 200, r)
    held.join(10)
    check("/gone" not in b.order, b.order)
    rf.stop()


def test_queued_post_body_and_reload():
    b = CountingBackend(lambda t: 0.6 if t == "/hold" else 0.01)
    ini, aport = admin_ini(config([b.addr], upstream="max_conns = 1\nqueue_size = 4"))
    rf = Ringfront(ini)
    held = threading.Thread(target=lambda: request(rf.port, "GET", "/hold"))
    held.start()
    time.sleep(0.1)
    # a body sent while the request waits goes to the backend with it
    body = b"x" * 100000
    r = request(rf.port, "POST", "/post", body=body)
    check(r.status == 200 and r.body == b"/post", r)
    check(b.order[:2] == ["/hold", "/post"], b.order)
    held.join(10)
    # a reload answers the waiting requests 503: their upstream is gone
    held = threading.Thread(target=lambda: request(rf.port, "GET", "/hold"))
    held.start()
    time.sleep(0.1)
    res = {}
    waiter = threading.Thread(target=lambda: res.update(r=request(rf.port, "GET", "/w")))
    waiter.start()
    check(wait_until(lambda: queue_stats(aport)["length"] == 1), queue_stats(aport))
    check(request(aport, "POST", "/reload").status == 200)
    waiter.join(10)
    held.join(10)
    check(res["r"].status == 503 and
          res["r"].json()["message"] == "configuration reloaded while waiting", res)
    check(request(rf.port, "GET", "/after").status == 200)
    rf.stop()


# ---- least_time and servers without a response time yet ----

def test_least_time_new_slow_server_gets_one_probe():
    """A server joining a measured upstream is assumed as fast as the
    fastest, one request at a time, until its first answer: a slow one
    must not swallow the burst that arrives meanwhile."""
    for strategy in ("least_time", "adaptive"):
        fast = Backend()
        slow = CountingBackend(lambda t: 0.5)
        ini, aport = admin_ini(config([fast.addr, slow.addr],
                                      upstream="balance = %s" % strategy))
        rf = Ringfront(ini)
        patch = json.dumps({"drain": True})
        r = request(aport, "PATCH", "/upstreams/app/servers/%s" % slow.addr, body=patch)
        check(r.status == 200, r)
        handled_by(rf.port, 20)          # the fast server has an average now
        r = request(aport, "PATCH", "/upstreams/app/servers/%s" % slow.addr,
                    body=json.dumps({"drain": False}))
        check(r.status == 200, r)
        counts, errors = concurrent_load(rf.port, 8, 25)
        check(not errors, errors[:3])
        check(slow.peak == 1, "%s: the new server held %d at once" % (strategy, slow.peak))
        check(len(slow.order) <= 2, "%s: the slow server got %d" % (strategy, len(slow.order)))
        rf.stop()
        fast.stop()
        slow.raw.close()
