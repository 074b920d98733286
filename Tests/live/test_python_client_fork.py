"""The Python client in processes that fork after configuring it: a bare os.fork, multiprocessing
and gunicorn --preload. Each child gets its own sender thread; what the parent queued before the
fork is sent once, by the parent."""

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from exposition import value


def run_script(tmp_path, perfgate, source):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                            env={"PERFGATE_URL": perfgate.base, "PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    return result.stdout


def count(perfgate, endpoint):
    return value(perfgate.metrics_text(), "backend_ttfb_seconds_count", provider="p", model="m", endpoint=endpoint)


TRACK = """
    from perfgate import PerformanceTracker

    def track(endpoint, n):
        for _ in range(n):
            tracker = PerformanceTracker(endpoint=endpoint)
            with tracker.backend_request(provider="p", model="m"):
                pass
            tracker.record_percentages()
"""


def test_a_forked_child_sends_its_own_events_and_the_parents_queue_is_sent_once(perfgate, tmp_path):
    out = run_script(tmp_path, perfgate, TRACK + """
    import os, sys
    import perfgate
    # A long flush interval: the parent's events are still queued when it forks.
    perfgate.configure(flush_interval=30)
    track("/before-fork", 10)
    pid = os.fork()
    if pid == 0:
        track("/child", 7)
        sys.exit(0)  # a normal exit: the child's sender flushes at exit
    _, status = os.waitpid(pid, 0)
    track("/parent-after", 5)
    print(os.waitstatus_to_exitcode(status))
    """)
    assert out == "0\n"
    assert count(perfgate, "/before-fork") == 10
    assert count(perfgate, "/child") == 7
    assert count(perfgate, "/parent-after") == 5


def test_multiprocessing_children_flush_before_they_exit(perfgate, tmp_path):
    out = run_script(tmp_path, perfgate, TRACK + """
    import multiprocessing
    import perfgate
    perfgate.configure(flush_interval=30)
    track("/parent", 4)

    def work(n):
        track("/worker", n)

    if __name__ == "__main__":
        context = multiprocessing.get_context("fork")
        workers = [context.Process(target=work, args=(n,)) for n in (3, 5, 8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        print([worker.exitcode for worker in workers])
    """)
    assert out == "[0, 0, 0]\n"
    assert count(perfgate, "/worker") == 16
    assert count(perfgate, "/parent") == 4


WSGI_APP = """
    import perfgate
    from perfgate import PerformanceTracker

    # Configured at import: with --preload this runs once, in the master, before the fork.
    perfgate.configure(flush_interval=0.2)

    def app(environ, start_response):
        tracker = PerformanceTracker(endpoint="/gunicorn")
        with tracker.backend_request(provider="p", model="m"):
            pass
        tracker.record_percentages()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(__import__("os").getpid()).encode()]
"""


def test_gunicorn_preload_workers_each_send(perfgate, tmp_path):
    pytest.importorskip("gunicorn")
    (tmp_path / "wsgi_app.py").write_text(textwrap.dedent(WSGI_APP))
    from conftest import free_port
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "3", "--bind", f"127.0.0.1:{port}", "wsgi_app:app"],
        cwd=tmp_path, env={"PERFGATE_URL": perfgate.base, "PATH": os.environ["PATH"]}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        pids = set()
        deadline = time.monotonic() + 30
        answered = 0
        while answered < 60 and time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/")
                pids.add(connection.getresponse().read())
                connection.close()
                answered += 1
            except OSError:
                time.sleep(0.1)
        assert answered == 60, (tmp_path / "gunicorn.log").read_text()
        # Wait for the workers' senders (0.2 s flush interval), without stopping them.
        deadline = time.monotonic() + 10
        while count(perfgate, "/gunicorn") != 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count(perfgate, "/gunicorn") == 60, (len(pids), (tmp_path / "gunicorn.log").read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
