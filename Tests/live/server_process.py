"""A server process on a loopback port: started, waited for until a path answers, always stopped.

The live tests' perfgate fixture and the benchmark suite (bench/run.py) both start servers
through this, so both see a server that died at start-up, or never became ready, the same way:
with its log.
"""

import http.client
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port, path, ssl_context=None):
    """True when GET `path` on the port answers 200 within a second."""
    if ssl_context:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=1, context=ssl_context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class ServerProcess:
    """One server process; start() and stop() may be called repeatedly."""

    def __init__(self, argv, port, ready_path, log_path, cwd=None, env=None, ssl_context=None):
        self.argv = [str(part) for part in argv]
        self.port = port
        self.ready_path = ready_path
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = env
        self.ssl_context = ssl_context
        self.process = None
        self.log = None

    def start(self, timeout=20):
        """Starts the process and returns once `ready_path` answers 200; raises with the log if
        the process exits first or does not answer in time."""
        self.log = open(self.log_path, "ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            if answers(self.port, self.ready_path, self.ssl_context):
                self.ready_after = time.monotonic() - self.started
                return self
            time.sleep(0.005)
        raise RuntimeError(f"{self.argv[0]} did not answer {self.ready_path} within {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig` and waits, killing the process if it outlives `timeout`; returns its exit code."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode if self.process else None
        self.process = None
        if self.log:
            self.log.close()
            self.log = None
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
