"""test_host.py - what an operator gets on a host: make install/uninstall
into a DESTDIR, the systemd unit (systemd-analyze verify where it runs),
-v/-h/-k and exit codes, the manual pages in sync with the config key
table, log reopening on SIGUSR1, the sd_notify messages, and the privilege
drop (as root: to nobody, and CAP_NET_BIND_SERVICE without root)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import (RINGFRONT, ROOT, Backend, Proc, Ringfront, check, config,
                     free_port, request, wait_port, wait_until)

UNIT = os.path.join(ROOT, "tools", "ringfront.service")
MAN8 = os.path.join(ROOT, "doc", "ringfront.8")
MAN5 = os.path.join(ROOT, "doc", "ringfront.ini.5")


def note(msg):
    print("  note: " + msg)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)


def make(*args):
    # -o ringfront: install what the test run built (any flavour), never rebuild it.
    r = run(["make", "-s", "--no-print-directory", "-C", ROOT, "-o", "ringfront"] + list(args))
    check(r.returncode == 0, "make %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr))
    return r


def files_under(d):
    out = set()
    for base, _, names in os.walk(d):
        for n in names:
            out.add(os.path.relpath(os.path.join(base, n), d))
    return out


INSTALLED = {
    "usr/sbin/ringfront": 0o755,
    "usr/share/man/man8/ringfront.8": 0o644,
    "usr/share/man/man5/ringfront.ini.5": 0o644,
    "usr/lib/systemd/system/ringfront.service": 0o644,
    "usr/lib/sysusers.d/ringfront.conf": 0o644,
    "usr/share/doc/ringfront/examples/ringfront.ini": 0o644,
    "usr/share/doc/ringfront/examples/logrotate.ringfront": 0o644,
    "etc/ringfront/ringfront.ini": 0o644,
}


def test_install_uninstall_destdir():
    d = tempfile.mkdtemp(prefix="rf-destdir-")
    try:
        make("install", "DESTDIR=" + d, "PREFIX=/usr")
        got = files_under(d)
        check(got == set(INSTALLED), "installed tree differs: extra %s missing %s" % (
            sorted(got - set(INSTALLED)), sorted(set(INSTALLED) - got)))
        for rel, mode in INSTALLED.items():
            st = os.stat(os.path.join(d, rel))
            check(st.st_mode & 0o777 == mode, "%s mode %o" % (rel, st.st_mode & 0o777))
        with open(os.path.join(d, "usr/sbin/ringfront"), "rb") as a, open(RINGFRONT, "rb") as b:
            check(a.read() == b.read(), "installed binary is not ./ringfront")
        with open(os.path.join(d, "usr/lib/systemd/system/ringfront.service")) as f:
            unit = f.read()
        check("ExecStart=/usr/sbin/ringfront -c /etc/ringfront/ringfront.ini\n" in unit, unit)
        r = run([os.path.join(d, "usr/sbin/ringfront"), "-t", "-c",
                 os.path.join(d, "etc/ringfront/ringfront.ini")])
        check(r.returncode == 0, "installed config does not check: " + r.stderr)
        # an edited configuration survives uninstall, an untouched one does not
        with open(os.path.join(d, "etc/ringfront/ringfront.ini"), "a") as f:
            f.write("; local edit\n")
        r = make("uninstall", "DESTDIR=" + d, "PREFIX=/usr")
        check("kept" in r.stdout, r.stdout)
        check(files_under(d) == {"etc/ringfront/ringfront.ini"}, files_under(d))
        make("install", "DESTDIR=" + d, "PREFIX=/usr")
        with open(os.path.join(d, "etc/ringfront/ringfront.ini")) as f:
            check(f.read().endswith("; local edit\n"), "install overwrote the configuration")
        os.unlink(os.path.join(d, "etc/ringfront/ringfront.ini"))
        make("install", "DESTDIR=" + d, "PREFIX=/usr")
        make("uninstall", "DESTDIR=" + d, "PREFIX=/usr")
        check(files_under(d) == set(), "left after uninstall: %s" % sorted(files_under(d)))
        check(not os.path.exists(os.path.join(d, "usr/share/doc/ringfront")), "doc dir left")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_install_default_prefix_paths():
    d = tempfile.mkdtemp(prefix="rf-destdir-")
    try:
        make("install", "DESTDIR=" + d)       # PREFIX defaults to /usr/local
        got = files_under(d)
        for rel in ("usr/local/sbin/ringfront", "usr/local/etc/ringfront/ringfront.ini",
                    "usr/local/lib/systemd/system/ringfront.service",
                    "usr/local/share/man/man8/ringfront.8"):
            check(rel in got, "%s not installed: %s" % (rel, sorted(got)))
        with open(os.path.join(d, "usr/local/lib/systemd/system/ringfront.service")) as f:
            unit = f.read()
        check("ExecStart=/usr/local/sbin/ringfront -c /usr/local/etc/ringfront/ringfront.ini\n"
              in unit, unit)
        make("uninstall", "DESTDIR=" + d)
        check(files_under(d) == set(), sorted(files_under(d)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unit_lines():
    with open(UNIT) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


def test_unit_file():
    lines = unit_lines()
    for want in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "User=ringfront",
                 "WantedBy=multi-user.target"):
        check(want in lines, "unit lacks %r" % want)
    check(any(ln.startswith("LimitNOFILE=") for ln in lines), "no LimitNOFILE")
    check(any(re.match(r"ExecStart=/usr/sbin/ringfront -c /etc/ringfront/ringfront\.ini$", ln)
              for ln in lines), "ExecStart")
    check(not any(ln.startswith("User=root") for ln in lines), "runs as root")
    if not shutil.which("systemd-analyze"):
        note("systemd-analyze not installed: unit not verified")
        return
    # Install under a real prefix so that ExecStart names an existing binary.
    d = tempfile.mkdtemp(prefix="rf-prefix-")
    try:
        make("install", "PREFIX=" + d)
        unit = os.path.join(d, "lib/systemd/system/ringfront.service")
        r = run(["systemd-analyze", "verify", "--man=no", unit], cwd=d)
        out = (r.stdout + r.stderr).strip()
        ours = [ln for ln in out.splitlines() if "ringfront" in ln]
        check(not ours, "systemd-analyze verify:\n" + out)
        if r.returncode != 0:
            note("systemd-analyze verify cannot run here (%s): skipped" % out[:200])
    finally:
        make("uninstall", "PREFIX=" + d)
        shutil.rmtree(d, ignore_errors=True)


def test_version_and_help():
    r = run([RINGFRONT, "-v"])
    check(r.returncode == 0, r)
    out = r.stdout
    check(re.search(r"^ringfront \d+\.\d+\.\d+$", out, re.M), out)
    check(re.search(r"^liburing \S+", out, re.M), out)
    check(re.search(r"^kernel: Linux ", out, re.M), out)
    check(re.search(r"^io_uring: (available|not available)", out, re.M), out)
    if "io_uring: available" in out:
        for what in ("setup flags:", "features:", "multishot accept:", "multishot recv:",
                     "provided buffer rings:", "opcodes:"):
            check("  " + what in out, "-v lacks %r:\n%s" % (what, out))
        check(re.search(r"single_issuer=(yes|no) defer_taskrun=(yes|no)", out), out)
    check(run([RINGFRONT, "--version"]).stdout == out, "--version differs from -v")
    for opt in ("-h", "--help"):
        r = run([RINGFRONT, opt])
        check(r.returncode == 0 and r.stdout.startswith("usage: ringfront"), r)
        for o in ("-c", "-t", "-k", "-v", "-h"):
            check(o + "," in r.stdout, "usage lacks %s:\n%s" % (o, r.stdout))
    # usage errors exit 2 with the usage on stderr
    for argv in ([], ["-x"], ["-c"], ["-c", "/dev/null", "extra"], ["-t"]):
        r = run([RINGFRONT] + argv)
        check(r.returncode == 2, "%s exited %d" % (argv, r.returncode))
        check("usage: ringfront" in r.stderr and not r.stdout, r)


def test_exit_codes():
    fd, path = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(config(["127.0.0.1:9"]))
    try:
        r = run([RINGFRONT, "-t", "-c", path])
        check(r.returncode == 0 and "configuration ok" in r.stdout, r)
        with open(path, "a") as f:
            f.write("[server]\nbogus = 1\n")
        r = run([RINGFRONT, "-t", "-c", path])
        check(r.returncode == 1 and re.match(re.escape(path) + r":\d+: ", r.stderr), r)
        r = run([RINGFRONT, "-c", path + ".missing"])
        check(r.returncode == 1, r)
    finally:
        os.unlink(path)


def dump_keys():
    r = run([RINGFRONT, "-k"])
    check(r.returncode == 0, r)
    keys, sections, sec = {}, set(), None
    for line in r.stdout.splitlines():
        m = re.match(r"^\[(\w+)(?: [^\]]*)?\]$", line)
        if m:
            sec = m.group(1)
            sections.add(sec)
            continue
        m = re.match(r"^([^;\s]\S*) =(?: (.*))?$", line)
        if m:
            keys[(sec, m.group(1))] = (m.group(2) or "").strip()
    return sections, keys


def unroff(s):
    return s.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\").replace("\\(rs", "\\")


def man_keys(path):
    """Sections (.SS [name ...]) and keys (.BR name " = default") of a page."""
    keys, sections, sec = {}, set(), None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".SH"):
                sec = None
            m = re.match(r'^\.SS "?\[(\w+)', line)
            if m:
                sec = m.group(1)
                sections.add(sec)
                continue
            m = re.match(r'^\.BR (\S+) "\s*=\s*(.*?)"\s*$', line)
            if m and sec:
                key = (sec, unroff(m.group(1)))
                check(key not in keys, "%s documented twice" % (key,))
                keys[key] = unroff(m.group(2))
    return sections, keys


def test_manpage_lists_every_key():
    sections, keys = dump_keys()
    check(("server", "listen") in keys and ("server", "user") in keys, keys)
    msec, mkeys = man_keys(MAN5)
    missing = sorted("[%s] %s" % k for k in keys if k not in mkeys)
    stale = sorted("[%s] %s" % k for k in mkeys if k not in keys)
    check(not missing, "keys missing from doc/ringfront.ini.5: %s" % missing)
    check(not stale, "doc/ringfront.ini.5 documents keys that do not exist: %s" % stale)
    wrong = ["[%s] %s = %r, documented %r" % (k + (keys[k], mkeys[k]))
             for k in keys if keys[k] != mkeys[k]]
    check(not wrong, "defaults differ: %s" % wrong)
    check(sections == msec, "sections: table %s, page %s" % (sorted(sections), sorted(msec)))


def test_manpages_render_cleanly():
    if not shutil.which("man"):
        note("man not installed: pages not rendered")
        return
    for page in (MAN8, MAN5):
        r = run(["man", "--warnings", "-l", "-E", "UTF-8", page], env=dict(os.environ, MANWIDTH="80"))
        check(r.returncode == 0, r)
        check(not r.stderr.strip(), "%s: %s" % (page, r.stderr))
        check(len(r.stdout) > 2000, "%s renders to almost nothing" % page)
    with open(MAN8) as f:
        text = f.read()
    for word in ("SIGHUP", "SIGUSR1", "SIGTERM", "EXIT STATUS", "NOTIFY_SOCKET", "FILES"):
        check(word in text, "ringfront.8 lacks " + word)
    version = run([RINGFRONT, "-v"]).stdout.split("\n")[0]      # "ringfront X.Y.Z"
    for page in (MAN8, MAN5):
        with open(page) as f:
            th = [ln for ln in f if ln.startswith(".TH ")]
        check(th and ('"%s"' % version) in th[0], "%s: .TH does not name %s" % (page, version))


def test_logrotate_example():
    with open(os.path.join(ROOT, "tools", "logrotate.ringfront")) as f:
        text = f.read()
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    check(body[0] == "/var/log/ringfront/*.log {" and body[-1] == "}", body)
    check("postrotate" in body and "endscript" in body, body)
    check(any("USR1" in ln and "ringfront" in ln for ln in body), "no SIGUSR1 in postrotate")
    check(any(ln.startswith("create ") and "ringfront" in ln for ln in body), "no create line")


def wait_file_has(path, text, timeout=3.0):
    def has():
        try:
            with open(path, errors="replace") as f:
                return text in f.read()
        except FileNotFoundError:
            return False
    return wait_until(has, timeout)


def test_sigusr1_reopens_logs():
    d = tempfile.mkdtemp(prefix="rf-logs-")
    err, acc = os.path.join(d, "error.log"), os.path.join(d, "access.log")
    b = Backend()
    rf = Ringfront(config([b.addr], server="log_file = %s\naccess_log = %s" % (err, acc)))
    try:
        check(wait_file_has(err, "ringfront started"), "no start line in log_file")
        check(request(rf.port, "GET", "/users/101").status == 200)
        check(wait_file_has(acc, "/users/101"), "no access log line before rotation")
        os.rename(err, err + ".1")
        os.rename(acc, acc + ".1")
        rf.signal(signal.SIGUSR1)
        check(wait_file_has(err, "log files reopened"), "log_file not reopened")
        rf.signal(signal.SIGHUP)          # any later line goes to the new file
        check(wait_file_has(err, "configuration reloaded"), "SIGHUP line not in new log")
        check(request(rf.port, "GET", "/users/202").status == 200)
        check(wait_file_has(acc, "/users/202"), "access log not reopened")
        with open(acc + ".1") as f:
            old = f.read()
        check("/users/101" in old and "/users/202" not in old, old)
        with open(err + ".1") as f:
            check("configuration reloaded" not in f.read(), "old log still written")
        rf.stop()
        check(wait_file_has(err, "msg=\"stopped\""), "stop line not in new log")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def notify_socket(abstract=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "rf-test-notify-%d-%d" % (os.getpid(), free_port())
        s.bind("\0" + name)
        addr, path = "@" + name, None
    else:
        path = tempfile.mktemp(prefix="rf-notify-", suffix=".sock")
        s.bind(path)
        addr = path
    s.settimeout(5)
    return s, addr, path


def recv_state(s):
    msg = s.recv(4096).decode()
    return dict(line.split("=", 1) for line in msg.split("\n") if line)


def start_with_env(ini_text, env_extra):
    fd, ini = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(ini_text)
    os.chmod(ini, 0o644)
    return Proc([RINGFRONT, "-c", ini], env=dict(os.environ, **env_extra)), ini


def check_notify(abstract):
    s, addr, path = notify_socket(abstract)
    b = Backend()
    port = free_port()
    p, ini = start_with_env(config([b.addr], port=port, workers=2), {"NOTIFY_SOCKET": addr})
    try:
        st = recv_state(s)
        check(st.get("READY") == "1", st)
        check("127.0.0.1:%d" % port in st.get("STATUS", "") and "2 workers" in st["STATUS"], st)
        check(request(port, "GET", "/users/1").status == 200)
        t0 = time.monotonic_ns() // 1000
        p.signal(signal.SIGHUP)
        st = recv_state(s)
        check(st.get("RELOADING") == "1", st)
        usec = int(st.get("MONOTONIC_USEC", "0"))
        check(abs(usec - t0) < 5000000, "MONOTONIC_USEC %d vs %d" % (usec, t0))
        check(recv_state(s).get("READY") == "1", "no READY=1 after the reload")
        p.signal(signal.SIGTERM)
        check(recv_state(s).get("STOPPING") == "1", "no STOPPING=1")
        check(p.p.wait(10) == 0, p.output())
        Proc.stop(p)
    finally:
        s.close()
        if path:
            os.unlink(path)
        os.unlink(ini)


def test_sd_notify_path_socket():
    check_notify(False)


def test_sd_notify_abstract_socket():
    check_notify(True)


def test_no_notify_socket_is_quiet():
    # a bad NOTIFY_SOCKET is a warning, not a failure
    b = Backend()
    port = free_port()
    p, ini = start_with_env(config([b.addr], port=port), {"NOTIFY_SOCKET": "relative/name"})
    try:
        wait_port(port, proc=p)
        check(request(port, "GET", "/users/1").status == 200)
        check(wait_until(lambda: "cannot use NOTIFY_SOCKET" in p.output()), p.output())
        check(Proc.stop(p) == 0, p.output())
    finally:
        os.unlink(ini)


def proc_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapAmb"):
                ids[k] = v.split()
    return ids


def nobody():
    import grp
    import pwd
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    try:
        gname = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        gname = str(pw.pw_gid)
    return pw.pw_uid, pw.pw_gid, gname


def test_privilege_drop_to_nobody():
    who = nobody()
    if os.geteuid() != 0 or not who:
        note("not root or no user nobody: privilege drop not tested")
        return
    uid, gid, gname = who
    b = Backend()
    rf = Ringfront(config([b.addr], workers=2, server="user = nobody\ngroup = %s" % gname))
    # the listeners open before the drop: wait for it to have happened
    wait_until(lambda: proc_ids(rf.pid)["Uid"][0] != "0", 5.0)
    ids = proc_ids(rf.pid)
    check(ids["Uid"] == [str(uid)] * 4, ids)
    check(ids["Gid"] == [str(gid)] * 4, ids)
    check(ids["Groups"] in ([], [str(gid)]), ids)
    check(int(ids["CapEff"][0], 16) == 0 and int(ids["CapPrm"][0], 16) == 0, ids)
    for i in range(4):
        check(request(rf.port, "GET", "/users/%d" % (i + 1)).status == 200)
    check("privileges dropped" in rf.output(), rf.output())
    rf.stop()


def low_port():
    for port in range(900, 1000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


def test_privileged_port_then_drop():
    """Root binds a port below 1024, then runs as nobody."""
    port = low_port()
    if os.geteuid() != 0 or not nobody() or not port:
        note("not root, no nobody or no free port below 1000: skipped")
        return
    b = Backend()
    rf = Ringfront(config([b.addr], port=port, server="user = nobody"))
    # the port answers as soon as it is bound, a moment before the drop
    deadline = time.time() + 5
    while proc_ids(rf.pid)["Uid"][0] != str(nobody()[0]) and time.time() < deadline:
        time.sleep(0.02)
    check(proc_ids(rf.pid)["Uid"][0] == str(nobody()[0]), proc_ids(rf.pid))
    check(request(rf.port, "GET", "/users/1").status == 200)
    rf.stop()


def test_cap_net_bind_service_without_root():
    """The systemd unit's way: an unprivileged user holding only
    CAP_NET_BIND_SERVICE (ambient) binds a low port; user= names itself."""
    port = low_port()
    who = nobody()
    if os.geteuid() != 0 or not who or not port or not shutil.which("setpriv"):
        note("needs root, nobody, setpriv and a free port below 1000: skipped")
        return
    b = Backend()
    fd, ini = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(config([b.addr], port=port, server="user = nobody"))
    os.chmod(ini, 0o644)
    pre = ["setpriv", "--reuid=%d" % who[0], "--regid=%d" % who[1], "--clear-groups",
           "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    try:
        p = Proc(pre + [RINGFRONT, "-c", ini])
        wait_port(port, proc=p)
        ids = proc_ids(p.pid)
        check(ids["Uid"][0] == str(who[0]), ids)
        check(int(ids["CapEff"][0], 16) == 1 << 10, ids)     # CAP_NET_BIND_SERVICE only
        check(request(port, "GET", "/users/1").status == 200)
        check(Proc.stop(p) == 0, p.output())
        # without the capability the same start fails cleanly with exit 1
        p = Proc(pre[:4] + [RINGFRONT, "-c", ini])
        check(p.p.wait(10) == 1, p.output())
        check("cannot listen" in p.output(), p.output())
        Proc.stop(p)
    finally:
        os.unlink(ini)


def test_user_errors():
    b = Backend()
    fd, ini = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
    base = config([b.addr])
    try:
        with os.fdopen(fd, "w") as f:
            f.write(base.replace("[server]\n", "[server]\nuser = rf-no-such-user-x\n"))
        os.chmod(ini, 0o644)
        for argv in (["-t", "-c", ini], ["-c", ini]):
            r = run([RINGFRONT] + argv)
            check(r.returncode == 1 and "unknown user 'rf-no-such-user-x'" in r.stderr, r)
        with open(ini, "w") as f:
            f.write(base.replace("[server]\n", "[server]\ngroup = rf-no-such-group-x\n"))
        r = run([RINGFRONT, "-c", ini])
        check(r.returncode == 1 and "unknown group" in r.stderr, r)
        who = nobody()
        if os.geteuid() != 0 or not who or not shutil.which("setpriv"):
            note("not root: the non-root identity checks are skipped")
            return
        # started as nobody: asking for root is refused at start, noted by -t
        as_nobody = ["setpriv", "--reuid=%d" % who[0], "--regid=%d" % who[1], "--clear-groups"]
        with open(ini, "w") as f:
            f.write(base.replace("[server]\n", "[server]\nuser = root\n"))
        r = run(as_nobody + [RINGFRONT, "-c", ini])
        check(r.returncode == 1 and "not root" in r.stderr, r)
        r = run(as_nobody + [RINGFRONT, "-t", "-c", ini])
        check(r.returncode == 0 and "note:" in r.stderr, r)
        # asking for the identity it already has is fine
        with open(ini, "w") as f:
            f.write(base.replace("[server]\n", "[server]\nuser = nobody\n"))
        r = run(as_nobody + [RINGFRONT, "-t", "-c", ini])
        check(r.returncode == 0 and not r.stderr, r)
    finally:
        os.unlink(ini)


def test_second_instance_on_the_same_port_refuses_to_start():
    """SO_REUSEPORT lets sockets of one user share a port: a second
    ringfront would quietly take part of the traffic. It refuses instead."""
    b = Backend()
    ini = config([b.addr], workers=2)
    rf = Ringfront(ini)
    fd, path = tempfile.mkstemp(prefix="rf-test-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(ini)
    try:
        p = Proc([RINGFRONT, "-c", path])
        check(p.p.wait(10) == 1, p.output())
        check("cannot listen" in p.output() and "in use" in p.output(), p.output())
        Proc.stop(p)
    finally:
        os.unlink(path)
    check(request(rf.port, "GET", "/users/1").status == 200)
    rf.stop()
