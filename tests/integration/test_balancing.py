"""test_balancing.py - strategies and health through the real binary:
weights, least_conn around a slow server, ip_hash stickiness, active
health checks taking a server out and back, and a backend killed under
load without client errors."""
import json
import threading
import time

from harness import (Backend, Conn, Ringfront, build_request, check, config,
                     free_port, request)


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
