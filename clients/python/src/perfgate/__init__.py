"""Send per-request stage timings to perfgate.

The seed's instrumentation API: ``PerformanceTracker`` and ``track_request_stages``. Events are
sent by a background thread to ``PERFGATE_URL`` (default http://127.0.0.1:9095) with
``PERFGATE_TOKEN`` as the bearer token; ``configure()`` sets them in code.
"""

from .sender import Sender, configure, default_sender
from .tracker import PerformanceTracker, track_request_stages

__all__ = ["PerformanceTracker", "track_request_stages", "Sender", "configure", "default_sender"]
__version__ = "0.1.0"
