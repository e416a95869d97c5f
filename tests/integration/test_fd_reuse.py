"""test_fd_reuse.py - an error response followed by a quick client close
must never touch another socket: the lingering close once shut down a
descriptor number after it was reused by a new backend link or client
(an uncounted io_uring shutdown run late in io-wq; now shutdown(2))."""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
from harness import Backend, Ringfront, check, config  # noqa: E402
from loadgen import Load  # noqa: E402
from test_abuse import oversized_upload  # noqa: E402


def test_error_response_then_quick_close_does_not_hit_other_sockets():
    """Clients send bodies over max_body_size and close as soon as they
    have read the 413; meanwhile other clients send plain GETs. Every
    uploader must get its 413 and every GET its 200; the backend must
    never be blamed (no circuit opens)."""
    b = Backend()
    rf = Ringfront(config([b.addr], workers=1, server="max_body_size = 64k"))
    chunk = b"z" * 65536
    stop = threading.Event()
    got = {}
    lock = threading.Lock()

    def uploader(k):
        i = 0
        while not stop.is_set():
            st = oversized_upload(rf.port, chunked=bool((k + i) % 2), chunk=chunk,
                                  wait_close=False)
            i += 1
            with lock:
                got[st] = got.get(st, 0) + 1

    ts = [threading.Thread(target=uploader, args=(k,)) for k in range(10)]
    for t in ts:
        t.start()
    load = Load(rf.port, 4, ["/users/1", "/users/2"]).start()
    time.sleep(5)
    innocent = load.stop()
    stop.set()
    for t in ts:
        t.join(30)
    log = rf.output()
    rf.stop()
    print("    uploads: %r; plain GETs: %r %r" % (got, innocent["status"], innocent["errors"]))
    check(set(got) == {"413"}, "oversized uploads answered %r" % got)
    check(set(innocent["status"]) == {200} and not any(innocent["errors"].values()),
          "plain GETs beside them got %r %r" % (innocent["status"], innocent["errors"]))
    check("circuit open" not in log, "a healthy backend was blamed:\n" +
          "\n".join(l for l in log.splitlines() if "circuit" in l)[:1000])
