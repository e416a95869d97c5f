"""procstat.py - what a process holds, from /proc: descriptor count, a
census of its sockets by role (listening, client side, backend side, and
sockets no longer in the TCP tables: closed but never released), RSS and
CPU time. Used by tests/integration/test_abuse.py, test_faults.py and
tests/soak/."""
import os
import time

# /proc/net/tcp state codes
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING"}


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """utime + stime of every thread, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _tcp_table():
    """{inode: (local_port, remote_port, state)} for IPv4 and IPv6 sockets."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport = int(p[1].rsplit(":", 1)[1], 16)
                    rport = int(p[2].rsplit(":", 1)[1], 16)
                    out[int(p[9])] = (lport, rport, int(p[3], 16))
        except OSError:
            pass
    return out


def fd_census(pid, listen_ports):
    """Count <pid>'s descriptors by kind. <listen_ports>: ringfront's own
    listening ports (proxy, admin, ...), so a connection on one of them is
    a client; any other TCP connection is to a backend.
    Keys: total, other (not sockets), listen, client, backend,
    backend_close_wait, dead (sockets in no TCP table: a connection that
    ended but whose descriptor is still open), socket_other (unix, udp...).
    A socket in no table is looked at again for up to a second: one just
    created and not yet connecting (a health check between socket() and
    the submission of its connect, or one whose connect just failed) is in
    no table either, and soon it is, or is closed - on a loaded machine the
    worker may need a while. Only one still open and in no table then is
    dead."""
    listen_ports = set(listen_ports)
    table = _tcp_table()
    c = dict(total=0, other=0, listen=0, client=0, backend=0, backend_close_wait=0,
             dead=0, socket_other=0)
    base = "/proc/%d/fd" % pid
    unknown = []

    def classify(ent):
        lport, rport, state = ent
        if state == 10:
            c["listen"] += 1
        elif lport in listen_ports:
            c["client"] += 1
        else:
            c["backend"] += 1
            if state == 8:
                c["backend_close_wait"] += 1

    for fd in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, fd))
        except OSError:
            continue
        c["total"] += 1
        if not target.startswith("socket:["):
            c["other"] += 1
            continue
        inode = int(target[8:-1])
        ent = table.get(inode)
        if ent is None:
            # not TCP at all, a TCP socket that left the tables (closed),
            # or one that has not entered them yet
            if _is_inet_socket(pid, fd):
                unknown.append((fd, target, inode))
            else:
                c["socket_other"] += 1
            continue
        classify(ent)
    deadline = time.time() + 1.0
    while unknown:
        time.sleep(0.05)
        table = _tcp_table()
        waiting = []
        for fd, target, inode in unknown:
            try:
                same = os.readlink(os.path.join(base, fd)) == target
            except OSError:
                same = False
            ent = table.get(inode)
            if ent is not None:
                classify(ent)
            elif not same:
                c["total"] -= 1         # closed meanwhile: it was on its way out
            elif time.time() < deadline:
                waiting.append((fd, target, inode))
            else:
                c["dead"] += 1
        unknown = waiting
    return c


def _is_inet_socket(pid, fd):
    """A TCP/UDP socket (as opposed to unix, netlink...). fdinfo has no
    family, so check the unix and udp tables by inode instead."""
    try:
        inode = int(os.readlink("/proc/%d/fd/%s" % (pid, fd))[8:-1])
    except (OSError, ValueError):
        return False
    for name in ("/proc/net/unix", "/proc/net/udp", "/proc/net/udp6", "/proc/net/netlink"):
        try:
            with open(name) as f:
                for line in f:
                    if (" %d " % inode) in line or line.rstrip().endswith(" %d" % inode):
                        return False
        except OSError:
            pass
    return True
