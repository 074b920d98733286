"""PerformanceTracker: times a request's stages and sends them to perfgate as one event."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, AsyncIterable, AsyncIterator, Dict, Iterable, Iterator, Optional, Type, TypeVar

from .sender import Sender, default_sender

T = TypeVar("T")

BACKEND_FETCH = "backend_fetch"
STREAM_PROCESSING = "stream_processing"


class _State:
    """What a tracker has measured, and the sending of it, at most once."""

    __slots__ = ("endpoint", "provider", "model", "stages", "started", "sent", "sender")

    def __init__(self, endpoint: str, provider: Optional[str], model: Optional[str], sender: Optional[Sender]) -> None:
        self.endpoint = endpoint
        self.provider = provider
        self.model = model
        self.stages: Dict[str, int] = {}
        self.started = time.time()
        self.sent = False
        self.sender = sender

    def send(self) -> None:
        if self.sent or not self.stages:
            return
        self.sent = True
        try:
            event: Dict[str, Any] = {
                "endpoint": self.endpoint,
                "stages": {name: nanoseconds / 1e9 for name, nanoseconds in self.stages.items()},
                "timestamp": round(self.started, 3),
            }
            if self.provider is not None:
                event["provider"] = self.provider
            if self.model is not None:
                event["model"] = self.model
            (self.sender or default_sender()).submit(event)
        except Exception:  # never into the application
            pass


class _Stage:
    """Times one stage; usable with ``with`` and ``async with``. A stage entered twice adds up."""

    __slots__ = ("_state", "_name", "_start")

    def __init__(self, state: _State, name: str) -> None:
        self._state = state
        self._name = name
        self._start = 0

    def __enter__(self) -> "_Stage":
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        elapsed = time.perf_counter_ns() - self._start
        stages = self._state.stages
        stages[self._name] = stages.get(self._name, 0) + elapsed

    async def __aenter__(self) -> "_Stage":
        return self.__enter__()

    async def __aexit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        self.__exit__(kind, error, trace)


class PerformanceTracker:
    """Times the stages of one request and sends them to perfgate as one event.

    >>> tracker = PerformanceTracker(endpoint="/v1/chat/completions")
    >>> with tracker.stage("request_parsing"):
    ...     pass
    >>> with tracker.backend_request(provider="openrouter", model="gpt-4o"):
    ...     pass
    >>> tracker.record_percentages()

    ``record_percentages()`` sends the event (perfgate derives the percentages from it); a
    tracker that goes out of scope without it is sent when it is collected (the seed's handler
    returns early on its non-streaming path). Sending happens on a background thread and never
    raises.
    """

    __slots__ = ("_state", "__weakref__")

    def __init__(self, endpoint: str, *, provider: Optional[str] = None, model: Optional[str] = None, sender: Optional[Sender] = None) -> None:
        self._state = _State(endpoint, provider, model, sender)

    def __del__(self) -> None:
        # Cheaper than weakref.finalize, which would cost every request a few microseconds.
        try:
            self._state.send()
        except Exception:
            pass

    @property
    def endpoint(self) -> str:
        return self._state.endpoint

    @property
    def stages(self) -> Dict[str, float]:
        """The stages measured so far, in seconds."""
        return {name: nanoseconds / 1e9 for name, nanoseconds in self._state.stages.items()}

    def stage(self, name: str) -> _Stage:
        """Times a stage: request_parsing, auth_validation, request_preparation or your own."""
        return _Stage(self._state, name)

    def backend_request(self, provider: str, model: str) -> _Stage:
        """Times the backend call up to its first byte (``backend_fetch``) and labels the event."""
        self._state.provider = provider
        self._state.model = model
        return _Stage(self._state, BACKEND_FETCH)

    def streaming(self) -> _Stage:
        """Times streaming the response to the client (``stream_processing``)."""
        return _Stage(self._state, STREAM_PROCESSING)

    def stream(self, chunks: Iterable[T]) -> Iterator[T]:
        """Passes chunks through, timing ``stream_processing`` from the first chunk to the last."""
        first: Optional[int] = None
        try:
            for chunk in chunks:
                if first is None:
                    first = time.perf_counter_ns()
                yield chunk
        finally:
            if first is not None:
                self._add(STREAM_PROCESSING, time.perf_counter_ns() - first)

    async def astream(self, chunks: AsyncIterable[T]) -> AsyncIterator[T]:
        """``stream`` for async iterables."""
        first: Optional[int] = None
        try:
            async for chunk in chunks:
                if first is None:
                    first = time.perf_counter_ns()
                yield chunk
        finally:
            if first is not None:
                self._add(STREAM_PROCESSING, time.perf_counter_ns() - first)

    def record_percentages(self) -> None:
        """Sends the event, once; calls after the first do nothing."""
        self._state.send()

    def _add(self, name: str, nanoseconds: int) -> None:
        stages = self._state.stages
        stages[name] = stages.get(name, 0) + nanoseconds


class track_request_stages:
    """``with track_request_stages("/v1/responses") as tracker:`` — sends on exit (also ``async with``)."""

    def __init__(self, endpoint: str, *, sender: Optional[Sender] = None) -> None:
        self.tracker = PerformanceTracker(endpoint, sender=sender)

    def __enter__(self) -> PerformanceTracker:
        return self.tracker

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        self.tracker.record_percentages()

    async def __aenter__(self) -> PerformanceTracker:
        return self.tracker

    async def __aexit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        self.tracker.record_percentages()
