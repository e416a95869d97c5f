"""test_store.py - [store] persistence against the real binary: clients,
API keys and tiers, blocks, strategy, weight and drain survive a restart;
every admin write answered 2xx before a kill -9 is there afterwards; a
truncated journal replays up to the tear (and says how much it dropped);
reloads keep run-time strategy and server changes, with or without a
store; compaction writes a snapshot and drops clients idle past
client_ttl; a locked, unusable or newer-format store stops the start with
exit status 3."""
import json
import os
import shutil
import signal
import struct
import tempfile
import threading
import time

from harness import (Backend, Proc, Ringfront, check, config, free_port, request,
                     wait_until)

EXIT_STORE = 3


def store_dir():
    d = tempfile.mkdtemp(prefix="rf-store-")
    return d


def stack_ini(state, backends, aport, extra="", workers=2, store=True):
    ini = config([b.addr for b in backends], workers=workers)
    ini += "\n[admin]\nlisten = 127.0.0.1:%d\n" % aport
    ini += ("\n[ratelimit]\nrate = 1000/1s\nburst = 1000\nkey = header:X-API-Key\n"
            "\n[tier free]\nrate = 5/m\n\n[tier gold]\nrate = 1000/1s\n"
            "\n[api_keys]\ncfg-key = free\ncfg-other = free\n")
    if store:
        ini += "\n[store]\npath = %s\n%s\n" % (state, extra)
    return ini


def setup(nbackends=1, **kw):
    """Backends, a fresh state directory path, the admin port, and the INI."""
    bs = [Backend() for _ in range(nbackends)]
    state = os.path.join(store_dir(), "state")
    aport = free_port()
    return bs, state, aport, stack_ini(state, bs, aport, **kw)


def call(aport, method, path, body=None):
    h = {}
    if body is not None:
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    return request(aport, method, path, headers=h, body=body)


def ok(r, status=200):
    check(r.status == status, r)
    return r.json() if r.body else None


def killed(rf):
    """SIGKILL and reap, without the clean-exit check of Ringfront.stop()."""
    rf.signal(signal.SIGKILL)
    rf.p.wait(10)
    Proc.stop(rf)


def restart(ini, aport):
    """Start again on the same ports. The kernel tears the previous
    process's io_uring down after it exits (kill -9 or not), so its
    listening sockets may still take (and reset) a few connections: wait
    until they are gone."""
    rf = Ringfront(ini)
    good, deadline = 0, time.time() + 10
    while good < 20 and time.time() < deadline:
        try:
            ok(call(aport, "GET", "/stats"))
            request(rf.port, "GET", "/users/0")
            good += 1
        except OSError:
            good = 0
            time.sleep(0.05)
    check(good == 20, "the killed process's sockets stayed")
    return rf


def upstream(aport):
    return ok(call(aport, "GET", "/upstreams/app"))


def server(aport, addr):
    return ok(call(aport, "GET", "/upstreams/app/servers/%s" % addr))


def test_state_survives_restart():
    (b1, b2), state, aport, ini = setup(2)
    rf = Ringfront(ini)
    ok(call(aport, "POST", "/clients", {"client_id": "k-over", "capacity": 7,
                                         "rate_per_sec": 2.5}), 201)
    ok(call(aport, "POST", "/clients", {"client_id": "k-patched"}), 201)
    ok(call(aport, "PATCH", "/clients/k-patched", {"capacity": 3}))
    ok(call(aport, "POST", "/clients", {"client_id": "k-deleted"}), 201)
    ok(call(aport, "DELETE", "/clients/k-deleted"), 204)
    ok(call(aport, "POST", "/tier", {"api_key": "k-gold", "tier": "gold"}))
    ok(call(aport, "POST", "/admin/upgrade_tier", {"api_key": "cfg-other", "tier": "gold"}))
    ok(call(aport, "POST", "/block", {"api_key": "k-blocked"}))
    ok(call(aport, "POST", "/block", {"ip": "10.9.8.7"}))
    ok(call(aport, "POST", "/block", {"ip": "10.9.8.6"}))
    ok(call(aport, "POST", "/unblock", {"ip": "10.9.8.6"}))
    ok(call(aport, "DELETE", "/clients/cfg-key"), 204)
    ok(call(aport, "POST", "/strategy", {"upstream": "app", "balance": "least_conn"}))
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b2.addr, {"weight": 5}))
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b1.addr, {"drain": True}))
    st = ok(call(aport, "GET", "/stats"))["store"]
    check(st["enabled"] and st["path"] == state and st["journal_records"] >= 12, st)
    rf.stop()

    rf = restart(ini, aport)
    c = ok(call(aport, "GET", "/clients/k-over"))
    check(c["capacity"] == 7 and abs(c["rate_per_sec"] - 2.5) < 1e-9 and c["override"], c)
    c = ok(call(aport, "GET", "/clients/k-patched"))
    check(c["capacity"] == 3, c)
    check(call(aport, "GET", "/clients/k-deleted").status == 404)
    check(ok(call(aport, "GET", "/clients/k-gold"))["tier"] == "gold")
    check(ok(call(aport, "GET", "/clients/cfg-other"))["tier"] == "gold")
    # a key from [api_keys] deleted at run time stays deleted
    check(call(aport, "GET", "/clients/cfg-key").status == 404)
    check(ok(call(aport, "GET", "/clients/k-blocked"))["blocked"])
    check(ok(call(aport, "GET", "/clients/10.9.8.7"))["blocked"])
    check(call(aport, "GET", "/clients/10.9.8.6").status == 404)
    # the block acts on real requests
    r = request(rf.port, "GET", "/users/1", headers={"X-API-Key": "k-blocked"})
    check(r.status == 403, r)
    check(request(rf.port, "GET", "/users/1", headers={"X-API-Key": "k-gold"}).status == 200)
    check(upstream(aport)["balance"] == "least_conn")
    check(server(aport, b2.addr)["weight"] == 5)
    s1 = server(aport, b1.addr)
    check(s1["draining"] and s1["weight"] == 1, s1)
    for _ in range(6):
        r = request(rf.port, "GET", "/users/1")
        check(r.header("X-Handled-By") == "app-server-%d" % b2.port, r)
    # restoring the file's values drops the stored overrides
    ok(call(aport, "POST", "/strategy", {"upstream": "app", "balance": "round_robin"}))
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b1.addr, {"drain": False}))
    rf.stop()
    text = open(os.path.join(state, "journal"), "rb").read()
    check(b"upstream" in text, "tombstones are journaled")
    rf = restart(ini, aport)
    check(upstream(aport)["balance"] == "round_robin")
    check(not server(aport, b1.addr)["draining"])
    check(server(aport, b2.addr)["weight"] == 5)
    rf.stop()
    shutil.rmtree(os.path.dirname(state))


def test_kill9_during_admin_writes_keeps_every_acknowledged_one():
    (b1,), state, aport, ini = setup()
    rf = Ringfront(ini)
    acked, lock, stop = [], threading.Lock(), threading.Event()
    errors = []

    def writer(n):
        i = 0
        while not stop.is_set():
            cid = "burst-%d-%d" % (n, i)
            i += 1
            try:
                r = call(aport, "POST", "/clients", {"client_id": cid, "capacity": i})
            except Exception:  # noqa: BLE001 - the kill cuts requests off
                return
            if r.status == 201:
                with lock:
                    acked.append((cid, i))
            else:
                errors.append(r)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    check(wait_until(lambda: len(acked) >= 200, 30.0), "only %d writes" % len(acked))
    rf.signal(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(10)
    killed(rf)
    check(not errors, errors[:3])
    with lock:
        done = list(acked)
    rf = restart(ini, aport)
    listed = ok(call(aport, "GET", "/clients?limit=1000"))
    have = {c["id"]: c["capacity"] for c in listed["clients"]}
    missing = [cid for cid, cap in done if have.get(cid) != cap]
    check(not missing, "%d of %d acknowledged writes lost: %s" % (len(missing), len(done),
                                                                   missing[:5]))
    check("store loaded" in rf.output(), rf.output()[-2000:])
    rf.stop()
    shutil.rmtree(os.path.dirname(state))


def test_truncated_journal_replays_up_to_the_tear():
    (b1,), state, aport, ini = setup()
    rf = Ringfront(ini)
    for cid in ("first", "second", "third"):
        ok(call(aport, "POST", "/clients", {"client_id": cid}), 201)
    rf.stop()
    journal = os.path.join(state, "journal")
    size = os.path.getsize(journal)
    with open(journal, "r+b") as f:
        f.truncate(size - 10)       # the last record loses its end
    rf = restart(ini, aport)
    check(ok(call(aport, "GET", "/clients/first"))["client"])
    check(ok(call(aport, "GET", "/clients/second"))["client"])
    check(call(aport, "GET", "/clients/third").status == 404)
    out = rf.output()
    check("journal tail dropped" in out and "dropped_bytes=" in out, out[-2000:])
    dropped = int(out.split("dropped_bytes=")[1].split()[0])
    check(0 < dropped < size, dropped)
    check(ok(call(aport, "GET", "/stats"))["store"]["dropped_bytes"] == dropped)
    # new writes follow the good records and survive
    ok(call(aport, "POST", "/clients", {"client_id": "fourth"}), 201)
    killed(rf)
    rf = restart(ini, aport)
    for cid in ("first", "second", "fourth"):
        check(call(aport, "GET", "/clients/%s" % cid).status == 200, cid)
    # a flipped bit ends the replay there too
    rf.stop()
    with open(journal, "r+b") as f:
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 0x10]))
    rf = restart(ini, aport)
    check(call(aport, "GET", "/clients/first").status == 404)
    check("journal tail dropped" in rf.output())
    rf.stop()
    shutil.rmtree(os.path.dirname(state))


def reload_keeps(store):
    (b1, b2), state, aport, ini = setup(2, store=store)
    rf = Ringfront(ini)
    ok(call(aport, "POST", "/strategy", {"upstream": "app", "balance": "ip_hash"}))
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b1.addr, {"weight": 9}))
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b2.addr, {"drain": True}))
    ok(call(aport, "POST", "/reload"))
    check(upstream(aport)["balance"] == "ip_hash")
    check(server(aport, b1.addr)["weight"] == 9)
    check(server(aport, b2.addr)["draining"])
    for _ in range(4):
        check(request(rf.port, "GET", "/users/1").header("X-Handled-By") == "app-server-%d" % b1.port)
    rf.signal(signal.SIGHUP)
    check(wait_until(lambda: rf.output().count("configuration reloaded") >= 2, 5.0),
          rf.output()[-1500:])
    check(upstream(aport)["balance"] == "ip_hash")
    check(server(aport, b1.addr)["weight"] == 9)
    # back to the file's strategy: now an edit of the file applies
    ok(call(aport, "POST", "/strategy", {"upstream": "app", "balance": "round_robin"}))
    with open(rf.ini, "w") as f:
        f.write(ini.replace("health_path =", "health_path =\nbalance = least_time"))
    ok(call(aport, "POST", "/reload"))
    check(upstream(aport)["balance"] == "least_time")
    check(server(aport, b1.addr)["weight"] == 9)
    rf.stop()
    shutil.rmtree(os.path.dirname(state))


def test_reload_keeps_strategy_changes_without_a_store():
    reload_keeps(False)


def test_reload_keeps_strategy_changes_with_a_store():
    reload_keeps(True)


def test_compaction_and_stale_clients():
    (b1,), state, aport, ini = setup(extra="snapshot_interval = 1s\nclient_ttl = 3s")
    rf = Ringfront(ini)
    ok(call(aport, "POST", "/clients", {"client_id": "busy"}), 201)
    ok(call(aport, "POST", "/clients", {"client_id": "idle"}), 201)
    ok(call(aport, "POST", "/clients", {"client_id": "idle-blocked"}), 201)
    ok(call(aport, "POST", "/block", {"client_id": "idle-blocked"}))
    deadline = time.time() + 6
    while time.time() < deadline and call(aport, "GET", "/clients/idle").status == 200:
        check(request(rf.port, "GET", "/users/1", headers={"X-API-Key": "busy"}).status == 200)
        time.sleep(0.2)
    check(call(aport, "GET", "/clients/idle").status == 404, "idle client not removed")
    check(ok(call(aport, "GET", "/clients/busy"))["client"])
    c = ok(call(aport, "GET", "/clients/idle-blocked"))
    check(c["blocked"] and not c["client"], c)
    check(ok(call(aport, "GET", "/clients/cfg-key"))["client"], "[api_keys] never expire")
    check("stale client removed" in rf.output(), rf.output()[-2000:])
    check(wait_until(lambda: os.path.exists(os.path.join(state, "snapshot")), 3.0))
    st = ok(call(aport, "GET", "/stats"))["store"]
    check(st["compactions"] >= 1, st)
    rf.stop()
    rf = restart(ini, aport)
    check(ok(call(aport, "GET", "/clients/busy"))["client"])
    check(call(aport, "GET", "/clients/idle").status == 404)
    check(ok(call(aport, "GET", "/clients/idle-blocked"))["blocked"])
    rf.stop()
    shutil.rmtree(os.path.dirname(state))


def start_fails(ini, what):
    rf = Ringfront(ini, wait=False)
    try:
        rf.p.wait(15)
    except Exception:  # noqa: BLE001
        pass
    rc = Proc.stop(rf)
    check(rc == EXIT_STORE, "exit %s, not %d:\n%s" % (rc, EXIT_STORE, rf.output()[-1500:]))
    check(what in rf.output(), "no '%s' in:\n%s" % (what, rf.output()[-1500:]))
    check(rf.sanitizer_report() is None, rf.output()[-3000:])


def test_unusable_store_stops_the_start():
    b1 = Backend()
    top = store_dir()
    state = os.path.join(top, "state")
    aport = free_port()
    ini = stack_ini(state, [b1], aport)
    rf = Ringfront(ini)
    ok(call(aport, "POST", "/clients", {"client_id": "x"}), 201)
    # a second process on the same directory
    ini2 = stack_ini(state, [b1], free_port())
    start_fails(ini2, "in use by another ringfront process")
    rf.stop()
    # a journal from a newer format version
    journal = os.path.join(state, "journal")
    with open(journal, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 2))
    start_fails(ini, "newer than this ringfront")
    # not a directory
    path = os.path.join(top, "plain-file")
    open(path, "w").close()
    start_fails(stack_ini(path, [b1], aport), "cannot open the directory")
    # a parent that does not exist
    start_fails(stack_ini(os.path.join(top, "no", "such"), [b1], aport),
                "cannot create the directory")
    shutil.rmtree(top)


def test_store_after_privilege_drop():
    from test_host import nobody, note
    who = nobody()
    if os.geteuid() != 0 or not who:
        note("not root or no user nobody: the store after a privilege drop is not tested")
        return
    uid, gid, gname = who
    b1 = Backend()
    top = store_dir()
    os.chmod(top, 0o755)
    state = os.path.join(top, "state")
    aport = free_port()
    ini = config([b1.addr], server="user = nobody\ngroup = %s" % gname)
    ini += "\n[admin]\nlisten = 127.0.0.1:%d\n" % aport
    ini += "\n[ratelimit]\nrate = 100/1s\n\n[store]\npath = %s\nsnapshot_interval = 1s\n" % state
    # a directory ringfront creates as root is handed to the user it runs as
    rf = Ringfront(ini)
    ok(call(aport, "POST", "/block", {"ip": "10.1.2.3"}))
    check(wait_until(lambda: os.path.exists(os.path.join(state, "snapshot")), 5.0),
          rf.output()[-1500:])
    for name in ("", "lock", "journal", "snapshot"):
        st = os.stat(os.path.join(state, name))
        check((st.st_uid, st.st_gid) == (uid, gid), (name, st.st_uid, st.st_gid))
    rf.stop()
    rf = restart(ini, aport)
    check(ok(call(aport, "GET", "/clients/10.1.2.3"))["blocked"])
    rf.stop()
    # one it cannot write after the drop stops the start
    shutil.rmtree(state)
    os.mkdir(state, 0o700)
    start_fails(ini, "not writable by uid %d" % uid)
    shutil.rmtree(top)


def test_reload_keeps_records_of_servers_the_file_drops():
    b1, b2 = Backend(), Backend()
    aport = free_port()
    ini = stack_ini(None, [b1, b2], aport, store=False)
    rf = Ringfront(ini)
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b2.addr, {"drain": True}))
    ok(call(aport, "PATCH", "/upstreams/app/servers/%s" % b1.addr, {"weight": 4}))
    with open(rf.ini, "w") as f:
        f.write(ini.replace(" " + b2.addr, ""))
    ok(call(aport, "POST", "/reload"))
    check(len(upstream(aport)["servers"]) == 1)
    check(server(aport, b1.addr)["weight"] == 4, "a missing server stopped the others")
    with open(rf.ini, "w") as f:
        f.write(ini)
    ok(call(aport, "POST", "/reload"))
    check(server(aport, b2.addr)["draining"], "the dropped server's record was lost")
    check(server(aport, b1.addr)["weight"] == 4)
    rf.stop()


def test_services_survive_restart():
    """Dynamic services are stored: after a restart (and a kill -9) they
    take traffic again, with the strategy set on them, and a deleted one
    stays deleted."""
    (b1, b2, b3), state, aport, ini = setup(3)
    rf = Ringfront(ini)
    ok(call(aport, "POST", "/services/orders", [b2.addr, b3.addr]), 201)
    ok(call(aport, "POST", "/services/pay", {"servers": [b3.addr], "route": "/p/",
                                             "balance": "random2"}), 201)
    ok(call(aport, "POST", "/services/gone", [b2.addr]), 201)
    ok(call(aport, "DELETE", "/services/gone"), 204)
    ok(call(aport, "POST", "/strategy", {"upstream": "orders", "balance": "least_conn"}))
    rf.stop()
    for stop in (Ringfront.stop, killed):
        rf = restart(ini, aport)
        lst = ok(call(aport, "GET", "/services"))["services"]
        check(sorted(s["name"] for s in lst) == ["orders", "pay"], lst)
        orders = [s for s in lst if s["name"] == "orders"][0]
        check(orders["servers"] == [b2.addr, b3.addr] and orders["route"] == "/orders/", orders)
        check(orders["upstream"]["balance"] == "least_conn", orders["upstream"])
        r = request(rf.port, "GET", "/p/x")
        check(r.header("X-Handled-By") == "app-server-%d" % b3.port, r)
        stop(rf)


def test_bans_survive_restart_and_kill9():
    """An automatic ban in force is kept (within a second of being made) and
    is in force again after a restart or a kill -9, for what is left of it;
    keys hash as before (the seed is stored), so it finds its address."""
    b = Backend()
    state = os.path.join(store_dir(), "state")
    aport = free_port()
    ini = config([b.addr], workers=2) + (
        "\n[admin]\nlisten = 127.0.0.1:%d\n"
        "\n[ratelimit]\nrate = 2/60s\nburst = 2\nban_after = 3\nban_time = 300s\n"
        "\n[store]\npath = %s\n" % (aport, state))
    rf = Ringfront(ini)
    codes = [request(rf.port, "GET", "/users/1").status for _ in range(8)]
    check(codes.count(429) >= 3, codes)
    u = ok(call(aport, "GET", "/usage?key=127.0.0.1"))
    check(u["banned"] and u["ban_left_s"] > 250, u)
    time.sleep(1.5)                 # the once-a-second save
    for stop in (Ringfront.stop, killed):
        stop(rf)
        rf = restart(ini, aport)
        u = ok(call(aport, "GET", "/usage?key=127.0.0.1"))
        check(u["banned"] and 200 < u["ban_left_s"] <= 300, u)
        check(request(rf.port, "GET", "/users/1").status == 429)
    rf.stop()
