"""run.py - discover tests/integration/test_*.py, run every test_* function
with a time limit, stop what each test started, and print "RESULT p f".
Arguments are substrings of "file.test" to run only those; with RF_IO set
(harness.py) every line names the backend: "ok   test_x.test_y [io=epoll]"."""
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TEST_TIMEOUT = int(os.environ.get("RF_TEST_TIMEOUT", "60"))


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout("test exceeded %d s" % TEST_TIMEOUT)


def main():
    only = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    mods = sorted(f[:-3] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    passed = failed = 0
    signal.signal(signal.SIGALRM, on_alarm)
    for name in mods:
        mod = importlib.import_module(name)
        tests = [(n, getattr(mod, n)) for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        for tname, fn in tests:
            full = "%s.%s" % (name, tname)
            if only and not any(o in full for o in only):
                continue
            label = full + (" [io=%s]" % harness.IO if harness.IO else "")
            t0 = time.time()
            signal.alarm(TEST_TIMEOUT)
            err = None
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                err = "".join(traceback.format_exception_only(type(e), e)).strip()
                if not isinstance(e, (harness.TestFailure, Timeout)):
                    err += "\n" + traceback.format_exc()
            finally:
                signal.alarm(0)
            for p in harness.cleanup_all():
                rep = p.sanitizer_report()
                if rep and not err:
                    err = "sanitizer report:\n" + rep[-4000:]
            harness.remove_tempfiles()
            dt = time.time() - t0
            if err:
                failed += 1
                print("FAIL %s (%.1fs)\n  %s" % (label, dt, err.replace("\n", "\n  ")))
            else:
                passed += 1
                print("ok   %s (%.1fs)" % (label, dt))
    print("RESULT %d %d" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
