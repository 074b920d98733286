"""What tracking one request costs the caller: a tracker, the seed's five stages and
record_percentages(), against the same handler untracked. Prints microseconds per request.

    python3 clients/python/benchmarks/overhead.py [--requests 100000]
"""

import argparse
import statistics
import time

from perfgate import PerformanceTracker, Sender


def untracked(n):
    for _ in range(n):
        pass


def tracked(n, sender):
    for _ in range(n):
        tracker = PerformanceTracker(endpoint="/v1/chat/completions", sender=sender)
        with tracker.stage("request_parsing"):
            pass
        with tracker.stage("auth_validation"):
            pass
        with tracker.stage("request_preparation"):
            pass
        with tracker.backend_request(provider="openrouter", model="gpt-4o"):
            pass
        with tracker.streaming():
            pass
        tracker.record_percentages()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # The sender's thread never posts during the run (nothing listens, and it is not woken):
    # this measures the caller's time only, queueing included.
    sender = Sender("http://127.0.0.1:9", max_queue=args.requests * args.rounds + 1, batch_size=10**9, flush_interval=3600, exit_timeout=0)
    per_request = []
    baseline = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        untracked(args.requests)
        baseline.append((time.perf_counter() - started) / args.requests * 1e6)
        started = time.perf_counter()
        tracked(args.requests, sender)
        per_request.append((time.perf_counter() - started) / args.requests * 1e6)
    median = statistics.median(per_request)
    print(f"tracked request (5 stages + record): {median:.2f} µs median of {args.rounds} rounds of {args.requests}"
          f" (untracked loop {statistics.median(baseline):.3f} µs); target < 20 µs: {'met' if median < 20 else 'NOT met'}")
    print(f"events queued: {args.requests * args.rounds - sender.stats()['dropped']}, dropped: {sender.stats()['dropped']}")


if __name__ == "__main__":
    main()
