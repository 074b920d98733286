"""The background sender: batches events, bounds its queue, retries with an Idempotency-Key."""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from typing import Any, Dict, List, Optional

logger = logging.getLogger("perfgate")

Event = Dict[str, Any]

# Answers after which the same batch is worth sending again.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class Sender:
    """Sends events to perfgate from one daemon thread, so the application never waits for it.

    ``submit`` only puts the event on a bounded queue: when the queue is full the event is
    dropped and counted, never blocking the caller. The thread posts batches of up to
    ``batch_size`` events at least every ``flush_interval`` seconds. A batch that fails with a
    connection error or a transient status is retried with exponential backoff under the same
    ``Idempotency-Key``, so a retry of a batch perfgate already applied is not counted twice.
    Nothing raises into application code; problems are logged on the ``perfgate`` logger.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
        exit_timeout: float = 5.0,
    ) -> None:
        base = (url or os.environ.get("PERFGATE_URL") or "http://127.0.0.1:9095").rstrip("/")
        self.url = base + "/v1/events"
        # A URL that cannot work is reported once, not retried forever (nor raised: the sender
        # may be made lazily inside a request handler).
        scheme = urllib.parse.urlsplit(base).scheme
        self._unusable = None if scheme in ("http", "https") else f"PERFGATE_URL {base!r} is not an http:// or https:// URL"
        if self._unusable:
            logger.error("perfgate: %s; events will be counted as rejected", self._unusable)
        self.token = token if token is not None else os.environ.get("PERFGATE_TOKEN")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.exit_timeout = exit_timeout
        # A deque, not queue.Queue: appending takes no lock (the caller's time is what matters),
        # and the bound is checked by length, so it may be passed by a few events under races.
        self._queue: "collections.deque[Event]" = collections.deque()
        self.max_queue = max_queue
        self._start()
        _live_senders.add(self)
        atexit.register(self.close)

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._stats = {"sent": 0, "dropped": 0, "rejected": 0, "retries": 0}
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="perfgate-sender", daemon=True)
        self._thread.start()

    def _restart_in_child(self) -> None:
        """After ``fork()``: the child has no sender thread and may have inherited held locks.
        What was queued before the fork is the parent's to send; the child starts empty, with
        its own thread, so nothing is sent twice and nothing the child queues waits forever."""
        closed = self._closing.is_set()
        self._queue.clear()
        self._start()
        if closed:
            self._closing.set()
            self._wake.set()

    # -- called by the application ------------------------------------------------------------

    def submit(self, event: Event) -> bool:
        """Queues an event; False (and counted as dropped) when the queue is full or closed."""
        try:
            queued = len(self._queue)
            if queued >= self.max_queue or self._closing.is_set():
                with self._lock:
                    self._stats["dropped"] += 1
                return False
            self._queue.append(event)
            if queued + 1 == self.batch_size:
                self._wake.set()
            return True
        except Exception:  # never into the application
            return False

    def stats(self) -> Dict[str, int]:
        """Events sent, dropped (queue full), rejected by perfgate, and retries so far."""
        with self._lock:
            return dict(self._stats)

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until everything queued is sent or given up; True when it was in time."""
        self._wake.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._busy and not self._queue:
                return True
            self._wake.set()
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Sends what is queued (for at most ``exit_timeout`` seconds) and stops the thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake.set()
        self._thread.join(self.exit_timeout)

    # -- the sender thread -------------------------------------------------------------------

    def _take(self) -> List[Event]:
        batch: List[Event] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.popleft())
            except IndexError:
                break
        return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            closing = self._closing.is_set()
            deadline = time.monotonic() + self.exit_timeout if closing else None
            self._busy = True
            while True:
                batch = self._take()
                if not batch:
                    break
                self._deliver(batch, deadline)
            self._busy = False
            if closing:
                return

    def _deliver(self, batch: List[Event], deadline: Optional[float]) -> None:
        if self._unusable:
            with self._lock:
                self._stats["rejected"] += len(batch)
            return
        body = json.dumps(batch, separators=(",", ":")).encode()
        key = str(uuid.uuid4())
        backoff = 0.5
        while True:
            try:
                outcome = self._post(body, key)
            except Exception as error:  # refused, reset, timeout, DNS…
                outcome = f"{type(error).__name__}: {error}"
            if outcome is None:
                with self._lock:
                    self._stats["sent"] += len(batch)
                return
            if isinstance(outcome, int):
                with self._lock:
                    self._stats["rejected"] += len(batch)
                return
            # Transient: wait and send the same batch, with the same key, again.
            if deadline is not None and time.monotonic() + backoff > deadline:
                logger.warning("perfgate: giving up on %d events at exit: %s", len(batch), outcome)
                with self._lock:
                    self._stats["dropped"] += len(batch)
                return
            logger.debug("perfgate: retrying %d events in %.1fs: %s", len(batch), backoff, outcome)
            with self._lock:
                self._stats["retries"] += 1
            if self._closing.wait(backoff * random.uniform(0.8, 1.2)) and deadline is None:
                deadline = time.monotonic() + self.exit_timeout
            backoff = min(backoff * 2, self.max_backoff)

    def _post(self, body: bytes, key: str) -> "Optional[int | str]":
        """None when delivered; a status int when perfgate refused the batch for good; a reason
        string when it is worth retrying."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
                if answer.get("rejected"):
                    logger.warning("perfgate rejected %s events: %s", answer["rejected"], answer.get("errors", [])[:3])
                return None
        except urllib.error.HTTPError as error:
            detail = error.read()[:500].decode(errors="replace")
            if error.code in _TRANSIENT:
                return f"HTTP {error.code}: {detail}"
            logger.warning("perfgate refused a batch with HTTP %d: %s", error.code, detail)
            return error.code


_default: Optional[Sender] = None
_default_lock = threading.Lock()
# Every sender alive in this process, so a forked child can give each its own thread.
_live_senders: "weakref.WeakSet[Sender]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _default_lock
    # Another thread may have held the lock at the fork; in the child nobody will release it.
    _default_lock = threading.Lock()
    # A multiprocessing child leaves through os._exit, which skips atexit: its finalizers run
    # instead, and multiprocessing clears those right after the fork, so register through its
    # after-fork hook, which runs later.
    mp_util = sys.modules.get("multiprocessing.util")
    for sender in list(_live_senders):
        sender._restart_in_child()
        if mp_util is not None:
            mp_util.register_after_fork(sender, _close_at_multiprocessing_exit)


def _close_at_multiprocessing_exit(sender: Sender) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, sender.close, exitpriority=10)


# Pre-fork servers (gunicorn --preload, uWSGI, multiprocessing with the fork start method)
# configure perfgate in the parent and then fork workers.
os.register_at_fork(after_in_child=_after_fork_in_child)


def default_sender() -> Sender:
    """The process-wide sender, made on first use from PERFGATE_URL and PERFGATE_TOKEN."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sender()
        return _default


def configure(url: Optional[str] = None, token: Optional[str] = None, **options: Any) -> Sender:
    """Replaces the process-wide sender (closing the old one) with one made from these settings."""
    global _default
    with _default_lock:
        old, _default = _default, Sender(url, token, **options)
    if old is not None:
        old.close()
    return _default
