"""loadgen.py - a closed-loop HTTP/1.1 load generator that judges every
response: N threads, each on its own keep-alive connection, send requests
in turn and parse each answer strictly (status line, headers, a body
framed by Content-Length or chunked). Results are counted by status code
and by failure class:

  connect     the connection was refused or failed
  closed      the server closed (or reset) the connection before a whole
              response arrived
  malformed   what arrived is not an HTTP/1.1 response
  timeout     no whole response within the timeout

Used in-process by tests/integration/test_faults.py and as a command by
tests/soak/soak.sh:  python3 tests/tools/loadgen.py PORT SECONDS [THREADS] [PATH...]
which prints one JSON line at the end."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Conn, build_request  # noqa: E402


class Load:
    def __init__(self, port, threads=8, paths=("/users/1",), timeout=10.0, method="GET",
                 headers=None, pause=0.0):
        self.port = port
        self.nthreads = threads
        self.paths = list(paths)
        self.timeout = timeout
        self.method = method
        self.headers = headers
        self.pause = pause          # seconds between two requests of a thread
        self.status = {}
        self.errors = {"connect": 0, "closed": 0, "malformed": 0, "timeout": 0}
        self.samples = []           # a few (class, detail) for failure messages
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.requests = 0

    def _count(self, status=None, error=None, detail=None):
        with self.lock:
            self.requests += 1
            if status is not None:
                self.status[status] = self.status.get(status, 0) + 1
            else:
                self.errors[error] += 1
                if len(self.samples) < 10:
                    self.samples.append((error, detail))

    def _run(self, k):
        conn = None
        i = k
        while not self.stopping.is_set():
            if conn is None:
                try:
                    conn = Conn(self.port, timeout=self.timeout)
                except OSError as e:
                    self._count(error="connect", detail=repr(e))
                    time.sleep(0.05)
                    continue
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                conn.send(build_request(self.method, path, headers=self.headers))
                r = conn.read_response(head_request=(self.method == "HEAD"))
            except socket.timeout:
                self._count(error="timeout", detail=path)
                conn.close()
                conn = None
                continue
            except (EOFError, ConnectionResetError, BrokenPipeError) as e:
                self._count(error="closed", detail="%s: %r" % (path, e))
                conn.close()
                conn = None
                continue
            except (ValueError, IndexError, UnicodeDecodeError) as e:
                self._count(error="malformed", detail="%s: %r" % (path, e))
                conn.close()
                conn = None
                continue
            self._count(status=r.status)
            if (r.header("connection") or "").lower() == "close":
                conn.close()
                conn = None
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def start(self):
        for k in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(k,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        return self.result()

    def result(self):
        with self.lock:
            return {"requests": self.requests, "status": dict(self.status),
                    "errors": dict(self.errors), "samples": list(self.samples)}


def main(argv):
    port, seconds = int(argv[1]), float(argv[2])
    threads = int(argv[3]) if len(argv) > 3 else 4
    paths = argv[4:] or ["/users/1"]
    load = Load(port, threads, paths).start()
    time.sleep(seconds)
    res = load.stop()
    res["status"] = {str(k): v for k, v in res["status"].items()}
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
