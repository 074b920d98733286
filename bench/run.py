#!/usr/bin/env python3
"""perfgate's benchmark suite: macro benchmarks of the real binary over loopback with wrk, side by
side with the Prometheus Pushgateway, plus the core micro benchmarks.

Every figure is printed with its baseline from the same run (the same server's trivial GET route,
Foundation's JSONDecoder, the Pushgateway serving or taking the same data, an empty store), and
the targets are reported as met or not. No figure fails the run: the machines are shared and
noisy. Errors do fail it (a non-2xx answer, a server that does not start, wrong counts).

    bench/run.py                  # release build, full durations (about 4 minutes)
    bench/run.py --smoke --bin .build/debug    # seconds; the test command runs this so nothing rots
    bench/run.py http scrape      # only some sections: http batch otlp postgres pushgateway scrape trends reads startup core
    bench/run.py --baseline DIR batch trends   # the same sections against an earlier build too, with ratios
    bench/run.py --baseline DIR --rounds 3 batch   # alternately, three times each: medians and spread
"""
import argparse
import http.client
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Servers are started and stopped the way the live tests start them.
sys.path.insert(0, os.path.join(ROOT, "Tests", "live"))
from server_process import ServerProcess, free_port  # noqa: E402
WRK = os.path.join(ROOT, "bench", "wrk")
SECTIONS = ["http", "batch", "otlp", "postgres", "pushgateway", "scrape", "trends", "reads", "startup", "core"]
# The binaries the sections run: what --bin must hold, and what is built without it.
PRODUCTS = ["perfgate", "core-benchmark", "store-fixture", "otlp-decode-benchmark", "store-commit-benchmark"]


PROTOBUF_ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"


def get(port, path, timeout=30, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def otlp_export(traces):
    """An OTLP ExportTraceServiceRequest (protobuf) of `traces` traces of eight spans each: a root
    with http.route, the five seed stages (provider and model on backend_fetch) and two spans that
    are no stage; and the same traces as /v1/events events. Written by hand: field numbers from
    opentelemetry-proto (collector/trace/v1, trace/v1, common/v1)."""

    def varint(value):
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def field(number, payload):
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def fixed64(number, value):
        return varint(number << 3 | 1) + value.to_bytes(8, "little")

    def attribute(key, value):
        return field(9, field(1, key.encode()) + field(2, field(1, value.encode())))

    providers, models = ["openrouter", "openai", "anthropic", "bedrock"], ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b"]
    start = (time.time_ns() // 1_000_000_000 - 60) * 1_000_000_000
    spans, events = bytearray(), []
    for trace in range(traces):
        trace_id = (0xABCD0000 + trace).to_bytes(16, "big")
        provider, model, endpoint = providers[trace % 4], models[trace // 4 % 4], ["/v1/chat/completions", "/v1/completions"][trace // 16 % 2]
        stages = {"request_parsing": 50_000 + trace * 1000, "auth_validation": 30_000 + trace * 700, "request_preparation": 20_000 + trace * 300,
                  "backend_fetch": 200_000_000 + trace * 7_919_000, "stream_processing": 500_000_000 + trace * 10_472_900}
        root = field(1, trace_id) + field(2, (1).to_bytes(8, "big")) + field(5, b"POST " + endpoint.encode()) + fixed64(7, start) + fixed64(8, start + 2_000_000_000)
        spans += field(2, root + attribute("http.route", endpoint))
        for index, (name, nanoseconds) in enumerate(list(stages.items()) + [("db query", 1_000_000), ("cache GET", 200_000)]):
            span = field(1, trace_id) + field(2, (index + 2).to_bytes(8, "big")) + field(4, (1).to_bytes(8, "big"))
            span += field(5, name.encode()) + fixed64(7, start) + fixed64(8, start + nanoseconds)
            if name == "backend_fetch":
                span += attribute("gen_ai.provider.name", provider) + attribute("gen_ai.request.model", model)
            spans += field(2, span)
        events.append({"endpoint": endpoint, "provider": provider, "model": model, "timestamp": start // 1_000_000_000,
                       "stages": {name: nanoseconds / 1e9 for name, nanoseconds in stages.items()}})
    return field(1, field(2, bytes(spans))), events


def machine_seconds():
    """The whole machine's CPU time so far, in seconds: busy (every process and the kernel), idle
    (iowait included), and spent by the kernel's block-I/O workers (`kworker/...-kblockd`, which
    dispatch a disk flush); None where /proc cannot tell. Steal is in neither: the host took it."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as stat:
            user, nice, system, idle, iowait, irq, softirq = map(int, stat.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    block = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if not comm.read().strip().endswith("kblockd"):
                    continue
            block += Process.stat_cpu_seconds(f"/proc/{pid}/stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the worker ended while we looked
    return {"busy": (user + nice + system + irq + softirq) / ticks, "idle": (idle + iowait) / ticks, "block": block}


class Process(ServerProcess):
    """A server started for one benchmark and always stopped, with its CPU time and memory from /proc."""

    def __init__(self, argv, port, ready_path, log):
        super().__init__(argv, port, ready_path, log)
        # Long enough for start-up with a million rows on a busy machine.
        self.start(timeout=120)

    def memory_kib(self):
        """Resident set now and at its peak, in KiB, from /proc."""
        fields = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    @staticmethod
    def stat_cpu_seconds(path):
        """User plus system CPU time in a /proc stat file (the process's or one thread's)."""
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self):
        """User and system CPU time the process has used, from /proc."""
        return self.stat_cpu_seconds(f"/proc/{self.process.pid}/stat")

    def thread_cpu_seconds(self):
        """CPU time per thread name (NIO's event loops, the request tasks' executor threads,
        the writer), summed over threads of the same name, from /proc."""
        totals = {}
        for task in os.listdir(f"/proc/{self.process.pid}/task"):
            folder = f"/proc/{self.process.pid}/task/{task}"
            try:
                with open(f"{folder}/comm") as comm:
                    name = re.sub(r"#\d+$", "#n", comm.read().strip())
                spent = self.stat_cpu_seconds(f"{folder}/stat")
            except FileNotFoundError:
                continue  # the thread ended while we looked
            totals[name] = totals.get(name, 0) + spent
        return totals


class Bench:
    def __init__(self, options):
        self.options = options
        self.smoke = options.smoke
        self.bin = options.bin
        self.work = self.root = tempfile.mkdtemp(prefix="perfgate-bench-")
        self.seconds = 1 if self.smoke else 5
        self.results = []
        # Figures kept for the before/after table of a run with --baseline: {what: (value, unit, higher_is_better)}.
        self.figures = {}

    # ---- servers

    def perfgate(self, name, *extra, db=None):
        port = free_port()
        db = db or os.path.join(self.work, f"{name}.sqlite")
        argv = [os.path.join(self.bin, "perfgate"), "--host", "127.0.0.1", "--port", str(port), "--db", db, *extra]
        return Process(argv, port, "/readyz", os.path.join(self.work, f"{name}.log"))

    def pushgateway(self, name):
        binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
        if not binary:
            raise SystemExit("bench: prometheus-pushgateway is not installed (scripts/install-bench-deps installs it)")
        port = free_port()
        argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"]
        return Process(argv, port, "/-/ready", os.path.join(self.work, f"{name}.log"))

    # ---- load

    def wrk(self, port, path, connections, script=None, args=(), threads=None, seconds=None, server=None, headers=()):
        """Runs wrk; with `server`, also the server's CPU time per request (steadier than
        throughput on a shared machine: it does not count time the server waited for a core)."""
        threads = threads or min(2, connections)
        cpu_before = server.cpu_seconds() if server else None
        threads_before = server.thread_cpu_seconds() if server else None
        machine_before = machine_seconds()
        argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds or self.seconds}s", "--latency"]
        for header in headers:
            argv += ["-H", header]
        if script:
            argv += ["-s", os.path.join(WRK, script)]
        argv.append(f"http://127.0.0.1:{port}{path}")
        if args:
            argv += ["--", *map(str, args)]
        output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
        failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        if failed:
            raise SystemExit(f"bench: {failed.group(1)} requests to {path} were not answered 2xx:\n{output}")
        errors = re.search(r"Socket errors: (.*)", output)
        if errors and re.search(r"[1-9]", errors.group(1)):
            raise SystemExit(f"bench: socket errors against {path}: {errors.group(1)}\n{output}")
        requests = int(re.search(r"(\d+) requests in", output).group(1))
        machine_after = machine_seconds()
        machine = None
        if machine_before and machine_after:
            spent = {name: machine_after[name] - machine_before[name] for name in machine_after}
            machine = {
                "busy_us": spent["busy"] * 1e6 / max(requests, 1),
                "idle_percent": 100 * spent["idle"] / max(spent["busy"] + spent["idle"], 1e-9),
                "block_us": spent["block"] * 1e6 / max(requests, 1),
            }
        cpu_us = (server.cpu_seconds() - cpu_before) * 1e6 / max(requests, 1) if server else None
        by_thread = {}
        if server:
            for name, seconds in server.thread_cpu_seconds().items():
                spent = (seconds - threads_before.get(name, 0)) * 1e6 / max(requests, 1)
                if spent >= 0.5:
                    by_thread[name] = spent
        return {
            "cpu_us": cpu_us,
            "by_thread": by_thread,
            "machine": machine,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "p50": self.latency(output, "50%"),
            "p99": self.latency(output, "99%"),
            "mean": self.mean(output),
        }

    @staticmethod
    def to_ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    def latency(self, output, percentile):
        match = re.search(rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        return self.to_ms(*match.groups())

    def mean(self, output):
        match = re.search(r"Latency\s+([\d.]+)(us|ms|s)", output)
        return self.to_ms(*match.groups())

    def post(self, port, body, content_type="application/x-ndjson"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request("POST", "/v1/events", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise SystemExit(f"bench: loading events was answered {response.status}: {answer[:300]!r}")
            return json.loads(answer)
        finally:
            connection.close()

    def load_series(self, port, target):
        """Posts events until perfgate shows about `target` time series (sample lines, as
        Prometheus counts active series) in the seed's five families. Ten endpoints give 1,040
        lines (per endpoint: a frontend histogram of 11 lines, five stage histograms of 18 and
        three stage_percentage gauges); each provider-model-endpoint triple adds 24 (TTFB and
        streaming histograms of 12 lines each)."""
        endpoints = min(10, max(1, target // 200))
        triples = max(endpoints, (target - 104 * endpoints) // 24)
        lines = []
        for i in range(triples):
            lines.append(json.dumps({
                "endpoint": f"/v1/route-{i % endpoints}", "provider": f"provider-{i % 25}", "model": f"model-{i // 25}",
                "stages": {"request_parsing": 0.0011, "auth_validation": 0.0009, "request_preparation": 0.0004,
                           "backend_fetch": 0.2 + (i * 7919 % 3000) / 1000, "stream_processing": 0.5 + (i * 104729 % 4000) / 1000},
            }))
        for start in range(0, len(lines), 10000):
            self.post(port, "\n".join(lines[start:start + 10000]).encode())
        status, page = get(port, "/metrics")
        return page.decode()

    SEED_FAMILIES = ("backend_ttfb_seconds", "streaming_duration_seconds", "frontend_processing_seconds",
                     "request_stage_duration_seconds", "stage_percentage")

    @classmethod
    def count_series(cls, page):
        """Time series of the seed's families: one per sample line, as Prometheus counts them."""
        return sum(1 for line in page.splitlines() if line.startswith(cls.SEED_FAMILIES))

    @classmethod
    def count_histograms(cls, page):
        """Histogram series of the seed's families: one per `_count` line."""
        return sum(1 for line in page.splitlines() if line.startswith(tuple(f + "_count" for f in cls.SEED_FAMILIES[:4])))

    @staticmethod
    def seed_families(page):
        """The page without perfgate's own families: what the Pushgateway is given to serve."""
        kept, keep = [], True
        for line in page.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                keep = not line.split()[2].startswith("perfgate_")
            if keep:
                kept.append(line)
        return "\n".join(kept) + "\n"

    # ---- reporting

    def keep(self, what, value, unit, higher_is_better):
        """Records a figure for the before/after table."""
        self.figures[what] = (value, unit, higher_is_better)

    def report(self, what, figure, baseline=None, target=None, met=None):
        if self.smoke:
            target = None  # smoke figures come from short runs, often of a debug build
        line = f"  {what:<58} {figure}"
        if baseline:
            line += f"   [{baseline}]"
        if target:
            line += f"   target {target}: {'met' if met else 'NOT met'}"
            self.results.append((what, target, met))
        print(line, flush=True)

    def report_machine(self, name, result):
        """Reports what the whole machine spent and left idle per request during `result`'s load."""
        if machine := result["machine"]:
            self.report(
                f"  {name} whole machine, µs/request",
                f"busy {machine['busy_us']:.0f} (kernel block workers {machine['block_us']:.1f}), idle {machine['idle_percent']:.0f}%",
            )

    # ---- sections

    # Pairs of GET and POST loads the 32-connection ratio is the median of: on this shared host one
    # pair read anywhere from 0.57 to 0.96 x within minutes on the same build.
    RATIO_PAIRS = 3

    def http(self):
        print("== http: one-event POST against the same server's trivial GET route (durable acknowledgements)")
        with self.perfgate("http") as server:
            for connections in (1, 32):
                pairs = []
                for _ in range(self.RATIO_PAIRS if connections == 32 and not self.smoke else 1):
                    ceiling = self.wrk(server.port, "/healthz", connections, server=server)
                    ingest = self.wrk(server.port, "/v1/events", connections, "events.lua", [1], server=server)
                    pairs.append((ceiling, ingest, ingest["rps"] / ceiling["rps"]))
                # The pair with the median ratio stands for all of them, so its figures agree with each other.
                ceiling, ingest, ratio = sorted(pairs, key=lambda pair: pair[2])[len(pairs) // 2]
                self.keep(f"GET /healthz, {connections} conn, req/s", ceiling["rps"], "req/s", True)
                self.keep(f"GET /healthz, {connections} conn, server CPU per request", ceiling["cpu_us"], "µs", False)
                self.keep(f"POST one event, {connections} conn, req/s", ingest["rps"], "req/s", True)
                self.keep(f"POST one event, {connections} conn, ratio to GET", ratio, "x", True)
                self.keep(f"POST one event, {connections} conn, p99", ingest["p99"], "ms", False)
                self.keep(f"POST one event, {connections} conn, server CPU per request", ingest["cpu_us"], "µs", False)
                if len(pairs) > 1:
                    self.report(
                        f"GET then POST, {connections} connections, {len(pairs)} pairs",
                        "ratios " + ", ".join(f"{pair[2]:.2f}" for pair in pairs) + "; the median pair below",
                    )
                self.report(
                    f"GET /healthz, {connections} connection(s)",
                    f"{ceiling['rps']:9.0f} req/s  p99 {ceiling['p99']:.2f} ms  server CPU {ceiling['cpu_us']:.0f} µs/request",
                )
                self.report(
                    f"POST one event, {connections} connection(s)",
                    f"{ingest['rps']:9.0f} req/s  p50 {ingest['p50']:.2f} ms  p99 {ingest['p99']:.2f} ms  server CPU {ingest['cpu_us']:.0f} µs/request",
                    f"{ratio:.2f}x the GET route",
                    "0.85x GET, p99 <= 5 ms" if connections == 32 else None,
                    ratio >= 0.85 and ingest["p99"] <= 5.0,
                )
                if connections == 32:
                    for name, result in (("GET", ceiling), ("POST", ingest)):
                        split = ", ".join(f"{thread} {spent:.0f}" for thread, spent in sorted(result["by_thread"].items()))
                        self.report(f"  {name} server CPU by thread, µs/request", split)
                    # What the whole machine (wrk included) spent, and left idle, per request: a
                    # durable POST also pays the kernel's block workers for each commit's flush.
                    self.report_machine("GET", ceiling)
                    self.report_machine("POST", ingest)
            self.one_event_rps = ingest["rps"]
        # The same load without waiting for fsync: what the request path allows when commits cost
        # no disk time, which tells a commit-bound figure from a CPU-bound one. Not a target.
        with self.perfgate("http-nosync", "--durability", "normal") as server:
            unsynced = self.wrk(server.port, "/v1/events", 32, "events.lua", [1], server=server)
            self.keep("POST one event, 32 conn, --durability normal, req/s", unsynced["rps"], "req/s", True)
            self.keep("POST one event, 32 conn, --durability normal, server CPU per request", unsynced["cpu_us"], "µs", False)
            self.report(
                "POST one event, 32 connections, --durability normal",
                f"{unsynced['rps']:9.0f} req/s  p99 {unsynced['p99']:.2f} ms  server CPU {unsynced['cpu_us']:.0f} µs/request",
                f"{unsynced['rps'] / ceiling['rps']:.2f}x the GET route; {unsynced['rps'] / ingest['rps']:.2f}x the durable POST",
            )
            self.report_machine("POST (--durability normal)", unsynced)

    def batch(self):
        print("== batch: events/s over HTTP, 32 connections, durable acknowledgements")
        decoder = self.core_figures().get("JSONDecoder")
        with self.perfgate("batch") as server:
            for size in (100, 1000):
                for layout in ("json", "ndjson"):
                    result = self.wrk(server.port, "/v1/events", 32, "events.lua", [size, layout], server=server)
                    events = result["rps"] * size
                    self.keep(f"{size}-event {layout} bodies, events/s", events, "events/s", True)
                    self.keep(f"{size}-event {layout} bodies, server CPU per event", result["cpu_us"] * 1000 / size, "ns", False)
                    baseline = f"{events / decoder:.1f}x JSONDecoder alone ({decoder:,.0f} events/s on one core)" if decoder else None
                    self.report(
                        f"{size}-event {layout} bodies",
                        f"{events:11,.0f} events/s  ({result['rps']:.0f} req/s, p99 {result['p99']:.1f} ms, server CPU {result['cpu_us'] * 1000 / size:.0f} ns/event)",
                        baseline,
                        ">= 1,000,000 events/s and >= 5x JSONDecoder" if size == 1000 and layout == "json" else None,
                        events >= 1_000_000 and (decoder is None or events >= 5 * decoder),
                    )

    def otlp(self):
        print("== otlp: OTLP protobuf exports of 512 spans (64 traces of 8 spans) against the same traces as /v1/events, 32 connections")
        body, events = otlp_export(traces=64)
        path = os.path.join(self.work, "otlp-export.pb")
        with open(path, "wb") as out:
            out.write(body)
        with self.perfgate("otlp") as server:
            spans = self.wrk(server.port, "/v1/traces", 32, "file.lua", [path, "application/x-protobuf"], server=server)
            # Every span counted: no trace refused, none without its stages.
            page = get(server.port, "/metrics")[1].decode()
            counted = {name: float(value) for name, value in re.findall(r'^(perfgate_otlp_(?:spans_refused_total\{reason="\w+"\}|traces_total\{outcome="\w+"\})) (\S+)$', page, re.M)}
            refused = sum(v for k, v in counted.items() if k.startswith("perfgate_otlp_spans_refused_total"))
            if refused != 0 or counted.get('perfgate_otlp_traces_total{outcome="no_stages"}') != 0 \
                    or not counted.get('perfgate_otlp_traces_total{outcome="event"}'):
                raise SystemExit(f"bench: the OTLP exports were not all counted as events: {counted}")
            with open(os.path.join(self.work, "otlp-events.json"), "w") as out:
                json.dump(events, out)
            same = self.wrk(server.port, "/v1/events", 32, "file.lua", [os.path.join(self.work, "otlp-events.json")], server=server)
        decode = os.path.join(self.bin, "otlp-decode-benchmark")
        if os.path.exists(decode):
            # The decoder alone, against swift-protobuf's generated code for the same messages.
            output = subprocess.run([decode] + (["--smoke"] if self.smoke else []), capture_output=True, text=True, check=True, timeout=600).stdout
            for line in output.splitlines()[1:]:
                print("  decode only: " + line.strip())
        span_rate, event_rate = spans["rps"] * 512, same["rps"] * 64
        self.keep("OTLP 512-span exports, spans/s", span_rate, "spans/s", True)
        self.keep("OTLP 512-span exports, server CPU per span", spans["cpu_us"] * 1000 / 512, "ns", False)
        self.report("/v1/events, the same 64 traces as events", f"{event_rate:11,.0f} events/s  (server CPU {same['cpu_us'] * 1000 / 64:.0f} ns/event)")
        self.report(
            "/v1/traces, 512-span protobuf exports",
            f"{span_rate:11,.0f} spans/s  ({spans['rps'] * 64:,.0f} traces/s, p99 {spans['p99']:.1f} ms, server CPU {spans['cpu_us'] * 1000 / 512:.0f} ns/span)",
            f"{span_rate / event_rate:.2f}x the events/s of /v1/events",
            "spans/s >= events/s of /v1/events for the same traces",
            span_rate >= event_rate,
        )

    def postgres(self):
        print("== postgres: the shared store against SQLite in the same run (a local PostgreSQL 15, synchronous_commit on)")
        from postgres_server import PostgresServer
        database = PostgresServer().start()
        try:
            commit = os.path.join(self.bin, "store-commit-benchmark")
            for store, extra in (("SQLite", []), ("PostgreSQL", ["--postgres", database.new_database()])):
                output = subprocess.run([commit, *(["--smoke"] if self.smoke else []), *extra], capture_output=True, text=True, check=True, timeout=900).stdout
                for line in output.splitlines()[1:]:
                    print(f"  {store} store: {line.strip()}")
            rates = {}
            for store, db in (("SQLite", None), ("PostgreSQL", database.new_database())):
                with self.perfgate(f"postgres-{store.lower()}", "--instance", "bench", db=db) as server:
                    single = self.wrk(server.port, "/v1/events", 32, "events.lua", [1], server=server)
                    batch = self.wrk(server.port, "/v1/events", 32, "events.lua", [1000, "json"], server=server)
                rates[store] = (single["rps"], batch["rps"] * 1000)
                self.keep(f"{store} store, one-event POST, req/s", single["rps"], "req/s", True)
                self.keep(f"{store} store, 1000-event JSON bodies, events/s", batch["rps"] * 1000, "events/s", True)
                ratio = lambda index: f"{rates[store][index] / rates['SQLite'][index]:.2f}x SQLite" if store != "SQLite" else None
                self.report(f"{store} store, one-event POST, 32 connections",
                            f"{single['rps']:9,.0f} req/s  p99 {single['p99']:.1f} ms  (perfgate CPU {single['cpu_us']:.0f} µs/request)", ratio(0))
                self.report(f"{store} store, 1,000-event JSON bodies, 32 connections",
                            f"{batch['rps'] * 1000:11,.0f} events/s  p99 {batch['p99']:.1f} ms  (perfgate CPU {batch['cpu_us']:.0f} µs/request)", ratio(1))
        finally:
            database.remove()

    def pushgateway_ingest(self):
        print("== pushgateway: one event's histograms pushed per request, against perfgate's one-event POST")
        with self.pushgateway("pushgateway-ingest") as gateway, self.perfgate("pushgateway-ingest") as server:
            perfgate = self.wrk(server.port, "/v1/events", 32, "events.lua", [1])
            self.report("perfgate POST one event, 32 connections", f"{perfgate['rps']:9.0f} req/s  p99 {perfgate['p99']:.2f} ms")
            for groups in (1, 1000):
                pushed = self.wrk(gateway.port, "/", 32, "pushgateway.lua", [groups])
                self.report(
                    f"Pushgateway POST, {groups} group(s), 32 connections",
                    f"{pushed['rps']:9.0f} req/s  p99 {pushed['p99']:.2f} ms",
                    f"perfgate {perfgate['rps'] / pushed['rps']:.1f}x",
                )

    def scrape(self):
        print("== scrape: /metrics with N time series (sample lines), against the Pushgateway serving the same page; memory")
        # The third size is 10,000 histogram series (about 125,000 time series): no target, for scale.
        sizes = (200, 1000) if self.smoke else (1000, 10000, 125000)
        for target in sizes:
            with self.perfgate(f"scrape-{target}") as server, self.pushgateway(f"scrape-{target}") as gateway:
                empty_rss, _ = server.memory_kib()
                page = self.load_series(server.port, target)
                series, histograms = self.count_series(page), self.count_histograms(page)
                seed = self.seed_families(page)
                connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
                connection.request("PUT", "/metrics/job/perfgate", body=seed.encode(), headers={"Content-Type": "text/plain; version=0.0.4"})
                response = connection.getresponse()
                response.read()
                if response.status not in (200, 202):
                    raise SystemExit(f"bench: the Pushgateway refused the page: {response.status}")
                ours = self.wrk(server.port, "/metrics", 1, threads=1)
                self.keep(f"/metrics text, {histograms} histograms", ours["mean"], "ms", False)
                theirs = self.wrk(gateway.port, "/metrics", 1, threads=1)
                ratio = theirs["mean"] / ours["mean"]
                size = len(get(server.port, "/metrics")[1])
                their_size = len(get(gateway.port, "/metrics")[1])
                checked = target == 10000
                self.report(
                    f"/metrics, {series} time series ({histograms} histograms), {size / 1e6:.2f} MB",
                    f"{ours['mean']:7.2f} ms mean  p99 {ours['p99']:.2f} ms",
                    f"Pushgateway {theirs['mean']:.2f} ms for {their_size / 1e6:.2f} MB: perfgate {ratio:.1f}x faster",
                    "<= 10 ms and >= 10x Pushgateway" if checked else None,
                    ours["mean"] <= 10 and ratio >= 10,
                )
                if checked or (self.smoke and target == sizes[-1]):
                    status, body = get(server.port, "/metrics", headers={"Accept": PROTOBUF_ACCEPT})
                    if status != 200 or not body:
                        raise SystemExit(f"bench: the protobuf exposition answered {status}")
                    protobuf = self.wrk(server.port, "/metrics", 1, threads=1, headers=[f"Accept: {PROTOBUF_ACCEPT}"])
                    self.keep(f"/metrics protobuf, {histograms} histograms", protobuf["mean"], "ms", False)
                    self.report(
                        f"/metrics protobuf (native histograms), {histograms} histograms, {len(body) / 1e6:.2f} MB",
                        f"{protobuf['mean']:7.2f} ms mean  p99 {protobuf['p99']:.2f} ms",
                        f"{protobuf['mean'] / ours['mean']:.1f}x the text page",
                    )
                rss, _ = server.memory_kib()
                per_series = (rss - empty_rss) * 1024 / series
                self.report(
                    f"resident memory with {series} time series",
                    f"{rss / 1024:7.1f} MiB  ({per_series:.0f} bytes per time series above the empty process)",
                    f"empty process {empty_rss / 1024:.1f} MiB; {(rss - empty_rss) * 1024 / histograms:.0f} bytes per histogram",
                    "<= 1 KiB per series" if checked else None,
                    per_series <= 1024,
                )
                if checked or (self.smoke and target == sizes[-1]):
                    self.wrk(server.port, "/v1/events", 32, "events.lua", [1000])
                    self.wrk(server.port, "/v1/events", 32, "events.lua", [1])
                    self.wrk(server.port, "/metrics", 2, threads=1)
                    _, peak = server.memory_kib()
                    self.report(
                        f"peak resident memory, {series} time series, after ingest and scrape load",
                        f"{peak / 1024:7.1f} MiB",
                        None,
                        "<= 100 MB" if checked else None,
                        peak * 1024 <= 100e6,
                    )

    def trends(self):
        series, minutes = (50, 10) if self.smoke else (1000, 120)
        print(f"== trends: /v1/trends over {series} series with {minutes} minute windows each")
        with self.perfgate("trends") as server:
            now = int(time.time())
            lines = []
            for minute in range(minutes):
                for i in range(series):
                    lines.append(json.dumps({
                        "endpoint": f"/v1/route-{i % 10}", "provider": f"provider-{i % 25}", "model": f"model-{i // 25}",
                        "stages": {"backend_fetch": 0.2 + (i * 7919 + minute * 31) % 3000 / 1000},
                        "timestamp": now - 60 * minute - 1,
                    }))
            for start in range(0, len(lines), 20000):
                self.post(server.port, "\n".join(lines[start:start + 20000]).encode())
            path = "/v1/trends?metric=backend_ttfb_seconds&quantile=0.95&window=1h&offset=1h&by=provider,model,endpoint"
            status, body = get(server.port, path)
            answer = json.loads(body)
            groups = len(answer.get("groups", answer.get("series", [])))
            if status != 200 or groups != series:
                raise SystemExit(f"bench: the trend query answered {status} with {groups} groups, expected {series}: {body[:300]!r}")
            result = self.wrk(server.port, path, 1, threads=1)
            self.keep(f"trend query, {series} series x {minutes} minutes", result["mean"], "ms", False)
            db = os.path.join(self.work, "trends.sqlite")
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as store:
                rows = store.execute("SELECT count(*) FROM rollup").fetchone()[0]
            size = sum(os.path.getsize(db + suffix) for suffix in ("", "-wal") if os.path.exists(db + suffix))
            self.keep("store bytes per rollup row", size / rows, "bytes", False)
            self.report(f"store size, {rows:,} rollup rows", f"{size / 1e6:7.1f} MB  ({size / rows:.0f} bytes per row)")
            self.report(
                f"trend query, {series} series x {minutes} minutes, 1h vs 1h before",
                f"{result['mean']:7.2f} ms mean  p99 {result['p99']:.2f} ms",
                None,
                "<= 50 ms" if not self.smoke else None,
                result["mean"] <= 50,
            )
            # The status page reads the same windows for four families and renders them.
            for window in ("1h", "24h"):
                status, body = get(server.port, f"/?window={window}")
                if status != 200 or b'data-provider="provider-' not in body:
                    raise SystemExit(f"bench: the status page answered {status} for window {window}: {body[:300]!r}")
                page = self.wrk(server.port, f"/?window={window}", 1, threads=1)
                self.report(
                    f"status page, {window} window, same store",
                    f"{page['mean']:7.2f} ms mean  p99 {page['p99']:.2f} ms  {len(body) // 1024} KiB",
                    f"{page['mean'] / result['mean']:.1f} x the trend query",
                )

    def reads(self):
        """Reads of the whole retention (a day and the hour before it) over 1,000 series of each of
        two families, alone and from eight clients at once, while a one-event POST client runs:
        their times, the POST client's p99 against its own idle figure, and the server's memory."""
        series, minutes = (100, 120) if self.smoke else (2000, 1500)
        print(f"== reads: whole-retention trend queries and status pages over {series} series x {minutes} minutes, with ingest running")
        db = os.path.join(self.work, "reads.sqlite")
        subprocess.run([os.path.join(self.bin, "store-fixture"), "--db", db, "--series", str(series), "--minutes", str(minutes)], check=True, timeout=900)
        # The fixture's pages written out first: the kernel writing them back would stall commits' fsyncs.
        os.sync()
        window = "24h" if not self.smoke else "1h"
        trend = f"/v1/trends?metric=backend_ttfb_seconds&window={window}&offset=1h&by=provider,model"
        filtered = trend + "&provider=provider-3"
        status = f"/?window={window}"
        with self.perfgate("reads", db=db) as server:
            def timed(path):
                start = time.monotonic()
                code, body = get(server.port, path, timeout=300)
                if code != 200:
                    raise SystemExit(f"bench: {path} answered {code}: {body[:300]!r}")
                return time.monotonic() - start
            def rss():
                fields = {}
                with open(f"/proc/{server.process.pid}/status") as status_file:
                    for line in status_file:
                        name, _, rest = line.partition(":")
                        if name in ("RssAnon", "VmHWM"):
                            fields[name] = int(rest.split()[0]) / 1024
                return fields
            anon_start = rss()["RssAnon"]
            alone = {path: min(timed(path) for _ in range(2)) for path in (trend, filtered, status)}
            anon_alone = rss()["RssAnon"]

            def post_p99(count, stop=None):
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                body = json.dumps({"endpoint": "/x", "provider": "p", "model": "m", "stages": {"backend_fetch": 0.5}})
                latencies = []
                for _ in range(count):
                    if stop is not None and stop.is_set():
                        break
                    start = time.monotonic()
                    connection.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise SystemExit(f"bench: a POST during reads answered {response.status}")
                    latencies.append(time.monotonic() - start)
                    time.sleep(0.01)
                connection.close()
                latencies.sort()
                return latencies[int(len(latencies) * 0.99)] * 1000, len(latencies)

            idle_p99, _ = post_p99(100 if self.smoke else 400)
            stop = threading.Event()
            durations = {trend: [], status: []}
            refused = []

            def reader(path):
                while not stop.is_set():
                    start = time.monotonic()
                    code, _ = get(server.port, path, timeout=300)
                    if code == 503:
                        refused.append(path)
                        time.sleep(1)
                    elif code != 200:
                        raise SystemExit(f"bench: {path} answered {code} under load")
                    else:
                        durations[path].append(time.monotonic() - start)

            readers = [threading.Thread(target=reader, args=(trend if i % 2 == 0 else status,), daemon=True) for i in range(8)]
            for thread in readers:
                thread.start()
            time.sleep(1)
            busy_p99, posts = post_p99(200 if self.smoke else 2000)
            stop.set()
            for thread in readers:
                thread.join(timeout=600)
            memory = rss()
        for name, path in (("trend query, by provider,model", trend), (f"trend query, one provider's {series // 100} TTFB series", filtered), ("status page", status)):
            self.keep(f"{name}, whole retention, alone", alone[path] * 1000, "ms", False)
            self.report(f"{name}, {window} + 1h, {series} series, alone", f"{alone[path] * 1000:7.0f} ms")
        for path, name in ((trend, "trend query"), (status, "status page")):
            if durations[path]:
                self.report(f"{name}, 8 readers at once (half each)", f"{statistics.mean(durations[path]):7.2f} s mean  max {max(durations[path]):.2f} s  ({len(durations[path])} answered)")
        self.keep("one-event POST p99 under 8 whole-retention readers", busy_p99, "ms", False)
        self.report(
            f"one-event POST p99, {posts} posts under 8 readers", f"{busy_p99:7.1f} ms", f"idle {idle_p99:.1f} ms, {busy_p99 / idle_p99:.1f}x",
            "<= 2x idle" if not self.smoke else None, busy_p99 <= 2 * idle_p99,
        )
        self.keep("anonymous memory after 8 readers", memory["RssAnon"], "MB", False)
        self.report(
            "anonymous memory: start, after one read of each, after 8 readers",
            f"{anon_start:5.0f} / {anon_alone:.0f} / {memory['RssAnon']:.0f} MB", f"peak RSS {memory['VmHWM']:.0f} MB (file pages of the store included)",
        )
        if refused:
            self.report("reads answered 503 (queue full)", f"{len(refused)}")

    def startup(self):
        series, minutes = (1000, 20) if self.smoke else (10000, 100)
        print(f"== startup: time to /readyz with a store of {series * minutes:,} rollup rows, against an empty store")
        with self.perfgate("startup-empty") as server:
            empty = server.ready_after
        db = os.path.join(self.work, "startup-full.sqlite")
        subprocess.run([os.path.join(self.bin, "store-fixture"), "--db", db, "--series", str(series), "--minutes", str(minutes)], check=True, timeout=600)
        with self.perfgate("startup-full", db=db) as server:
            full = server.ready_after
            page = get(server.port, "/metrics")[1].decode()
            restored = self.count_histograms(page)
        self.keep(f"start-up to /readyz, {series * minutes:,} rollup rows", full * 1000, "ms", False)
        if restored != series:
            raise SystemExit(f"bench: perfgate restored {restored} series from the fixture, expected {series}")
        self.report(
            f"start-up to /readyz, {series * minutes:,} rollup rows",
            f"{full * 1000:7.0f} ms",
            f"empty store {empty * 1000:.0f} ms",
            "<= 2 s" if not self.smoke else None,
            full <= 2,
        )

    def core_figures(self):
        if not hasattr(self, "_core"):
            argv = [os.path.join(self.bin, "core-benchmark")] + (["--smoke"] if self.smoke else [])
            self._core_output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout
            figures = {}
            for name, key in (("Foundation JSONDecoder", "JSONDecoder"), ("BatchDecoder + aggregation", "aggregate"), ("BatchDecoder ", "decode")):
                match = re.search(rf"{re.escape(name)}\s.*?(\d+) events/s", self._core_output)
                if match:
                    figures[key] = float(match.group(1))
            self._core = figures
        return self._core

    def core(self):
        print("== core: micro benchmarks, one core, no I/O")
        self.core_figures()
        print(self._core_output.rstrip())
        # Allocation counts are exact for a build: kept so that --baseline shows a change in them.
        for what, pattern in (
            ("allocations per event, 1,000-event body decoded and aggregated", r"allocations, BatchDecoder \+ aggregation into rollups\s+\d+ per body\s+([\d.]+) per event"),
            # The event-loop path; builds before it kept a batch per connection printed only the fresh one.
            ("allocations per one-event request, decoded and aggregated", r"allocations, one-event body, (?:kept batch \+ aggregation \(the event-loop path\)|BatchDecoder \+ aggregation(?!.*event-loop path)): (\d+) per request"),
        ):
            match = re.search(pattern, self._core_output, re.S)
            if match:
                self.keep(what, float(match.group(1)), "allocs", False)

    @staticmethod
    def compare(before_runs, after_runs):
        """Prints each figure before and after: the median over rounds, and the spread when there are several."""
        for what, (_, unit, higher_is_better) in after_runs[-1].items():
            then = [figures[what][0] for figures in before_runs if what in figures]
            now = [figures[what][0] for figures in after_runs if what in figures]
            if not then or not statistics.median(then):
                continue
            median_then, median_now = statistics.median(then), statistics.median(now)
            change = median_now / median_then - 1
            better = (change >= 0) == higher_is_better
            spread = f"  [rounds: {min(then):,.1f}..{max(then):,.1f} -> {min(now):,.1f}..{max(now):,.1f}]" if len(then) > 1 else ""
            print(f"  {what:<58} {median_then:12,.1f} -> {median_now:12,.1f} {unit:<8} {change:+.1%} ({'better' if better or change == 0 else 'worse'}){spread}", flush=True)

    def run_sections(self, sections):
        for section in sections:
            {"http": self.http, "batch": self.batch, "otlp": self.otlp, "pushgateway": self.pushgateway_ingest, "scrape": self.scrape,
             "trends": self.trends, "reads": self.reads, "postgres": self.postgres, "startup": self.startup, "core": self.core}[section]()

    def run(self, sections):
        try:
            if self.options.baseline:
                # The earlier build first, then this one, section by section in the same run; with
                # --rounds, alternately, and each figure is the median of its rounds (a shared
                # machine drifts by more than the changes measured).
                after_bin, after_results = self.bin, self.results
                root = self.root
                rounds = max(1, self.options.rounds)
                for section in sections:
                    runs = {"before": [], "after": []}
                    for round_number in range(rounds):
                        for label, binaries in (("before", self.options.baseline), ("after", after_bin)):
                            suffix = f", round {round_number + 1} of {rounds}" if rounds > 1 else ""
                            print(f"---- {label}: {binaries}{suffix}")
                            # Each pass in a folder of its own: stores are not shared between the builds.
                            self.bin, self.figures = binaries, {}
                            self.results = after_results if label == "after" and round_number == rounds - 1 else []
                            self.work = tempfile.mkdtemp(dir=root)
                            self.__dict__.pop("_core", None)
                            self.run_sections([section])
                            runs[label].append(self.figures)
                    self.compare(runs["before"], runs["after"])
            else:
                self.run_sections(sections)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.results and not self.smoke:
            met = sum(1 for _, _, ok in self.results if ok)
            print(f"== targets met: {met} of {len(self.results)}")
            for what, target, ok in self.results:
                if not ok:
                    print(f"  not met: {what} ({target})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one second per load, small data: checks the suite works, measures nothing")
    parser.add_argument("--bin", help=f"folder holding {', '.join(PRODUCTS)} (default: a release build, built first)")
    parser.add_argument("--baseline", help="folder holding an earlier build's binaries: each section runs against it first, then a table of both")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: run each section this many times, alternating the builds, and compare medians")
    parser.add_argument("sections", nargs="*", metavar="section", help=f"any of {', '.join(SECTIONS)} (default: all)")
    options = parser.parse_args()
    unknown = [name for name in options.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}")
    if not options.bin:
        for product in PRODUCTS:
            subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True)
        options.bin = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    print(f"perfgate benchmarks: {'smoke mode, figures mean nothing' if options.smoke else 'full run'}; binaries in {options.bin}; "
          f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    Bench(options).run(options.sections or SECTIONS)


if __name__ == "__main__":
    main()
