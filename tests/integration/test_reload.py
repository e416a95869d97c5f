"""test_reload.py - hot reload: SIGHUP switches upstreams and routes at
once, an invalid file keeps the running configuration (FILE:LINE in the
log), and repeated reloads under load fail no request and drop no
connection."""
import signal
import threading
import time

from harness import (Backend, Conn, Ringfront, build_request, check, config, free_port,
                     request, wait_until, with_io)


def rewrite(rf, text):
    text = with_io(text)
    with open(rf.ini, "w") as f:
        f.write(text)


def test_sighup_switches_backends():
    b1, b2 = Backend(), Backend()
    port_ini = config([b1.addr])
    rf = Ringfront(port_ini)
    check(request(rf.port, "GET", "/users/1").header("X-Handled-By") == "app-server-%d" % b1.port)
    # a connection open across the reload keeps working
    c = Conn(rf.port)
    c.send(build_request("GET", "/users/2"))
    check(c.read_response().status == 200)
    rewrite(rf, port_ini.replace(b1.addr, b2.addr))
    rf.signal(signal.SIGHUP)
    check(wait_until(lambda: "configuration switched" in rf.output(), 3.0), rf.output())
    for i in range(5):
        r = request(rf.port, "GET", "/users/%d" % i)
        check(r.header("X-Handled-By") == "app-server-%d" % b2.port, r)
    c.send(build_request("GET", "/users/3"))
    r = c.read_response()
    check(r.status == 200 and r.header("X-Handled-By") == "app-server-%d" % b2.port, r)
    c.close()
    rf.stop()


def test_invalid_reload_keeps_running_config():
    b1 = Backend()
    ini = config([b1.addr])
    rf = Ringfront(ini)
    rewrite(rf, ini + "\n[upstream app2]\nservers = nonsense\n")
    rf.signal(signal.SIGHUP)
    check(wait_until(lambda: "reload failed" in rf.output(), 3.0), rf.output())
    check(("%s:" % rf.ini) in rf.output(), rf.output()[-500:])
    r = request(rf.port, "GET", "/users/1")
    check(r.status == 200 and r.header("X-Handled-By") == "app-server-%d" % b1.port, r)
    rf.stop()


def test_reload_under_load_fails_nothing():
    b1, b2 = Backend(), Backend()
    ini_a = config([b1.addr, b2.addr], workers=2)
    ini_b = ini_a.replace("servers = %s %s" % (b1.addr, b2.addr), "servers = %s" % b2.addr)
    rf = Ringfront(ini_a)
    stop = threading.Event()
    errors, done = [], [0]
    lock = threading.Lock()

    def client():
        try:
            c = Conn(rf.port)
            while not stop.is_set():
                c.send(build_request("GET", "/users/1"))
                r = c.read_response()
                with lock:
                    done[0] += 1
                    if r.status != 200:
                        errors.append(r.status)
            c.close()
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))

    ts = [threading.Thread(target=client) for _ in range(6)]
    for t in ts:
        t.start()
    for i in range(8):
        time.sleep(0.15)
        rewrite(rf, ini_b if i % 2 == 0 else ini_a)
        rf.signal(signal.SIGHUP)
    time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join(10)
    check(not errors, "errors during reloads: %s" % errors[:5])
    check(done[0] > 100, done)
    # SIGHUPs that arrive while one reload runs merge into one signal
    check(rf.output().count("configuration reloaded") >= 2, rf.output()[-800:])
    rf.stop()


def test_admin_post_reload():
    b1, b2 = Backend(), Backend()
    aport = free_port()
    admin = "\n[admin]\nlisten = 127.0.0.1:%d\n" % aport
    ini = config([b1.addr]) + admin
    rf = Ringfront(ini)
    rewrite(rf, ini.replace(b1.addr, b2.addr))
    r = request(aport, "POST", "/reload")
    check(r.status == 200 and r.json()["reloaded"] is True, r)
    check(wait_until(lambda: request(rf.port, "GET", "/users/1").header("X-Handled-By")
                     == "app-server-%d" % b2.port, 3.0))
    rewrite(rf, ini + "\n[upstream broken]\nservers = nope\n")
    r = request(aport, "POST", "/reload")
    check(r.status == 400 and (rf.ini + ":") in r.json()["message"], r)
    rf.stop()
