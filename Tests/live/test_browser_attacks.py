"""What a hostile web page or a hostile label can do to perfgate through a browser, against the
live binary: no label value becomes markup on the status page (whole page and the fragment its
script swaps in with innerHTML), in JSON or in /metrics, whatever Unicode it carries; the page's
Content-Security-Policy forbids inline script; no cross-site page can write through a visitor's
browser (no-cors fetch, sendBeacon, form posts); and an unauthenticated /readyz names no path.

The payloads set a marker when they run (`window.__pwned_<n>`, a title `PWNED<n>`, a body attribute
`data-pwned-<n>`); headless Chromium loads, tabs through, focuses and fires events at every element
of the page, refreshes it the way its script does, and reads every marker back.
"""

import base64
import contextlib
import gzip
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from typing import NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from conftest import Perfgate
from exposition import LABEL, SAMPLE, unescape


def samples(text):
    """(name, labels, value text) of every sample line. Lines are split at "\\n" only, as the
    exposition format has them: exposition.samples uses str.splitlines(), which also splits at
    U+2028, U+2029, U+0085 and others that a label value may hold."""
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        yield match.group(1), {k: unescape(v) for k, v in LABEL.findall(match.group(3) or "")}, match.group(4)


def value(text, name, **labels):
    for sample_name, sample_labels, raw in samples(text):
        if sample_name == name and sample_labels == labels:
            return Decimal(raw)
    return None


# --- The hostile label table -------------------------------------------------------------------

MARKERS = (
    lambda n: f"window.__pwned_{n}=1",
    lambda n: f"document.title='PWNED{n}'",
    lambda n: f"document.body.setAttribute('data-pwned-{n}','1')",
)
W, T, B = 0, 1, 2  # which marker a payload sets

CONTROL = "must not contain control characters"

# (field, template with {m} for the marker, marker kind, None when accepted or the words of its 422)
TABLE = [
    # The known hole: '"' + U+0338 is one grapheme that is not '"', so it went out raw in an attribute.
    ("endpoint", 'x"\u0338 tabindex=1 autofocus onfocus={m} z', W, None),
    ("provider", 'p"\u0338 tabindex=1 autofocus onfocus={m} z', T, None),
    ("model", 'm"\u0338 tabindex=1 autofocus onfocus={m} z', B, None),
    # Other combining marks after each of " ' < > &.
    ("endpoint", '/"\u0301 tabindex=1 onfocus={m} x', W, None),
    ("provider", '"\u20d2 onclick={m} x', W, None),
    ("model", "'\u0338 onclick={m} x", W, None),
    ("endpoint", "<\u0338img src=x onerror={m}>", W, None),
    ("provider", ">\u0301<img src=x onerror={m}>", W, None),
    ("model", "&\u20d2<svg onload={m}>", W, None),
    ("endpoint", "&\u0338lt;img src=x onerror={m}&\u0301gt;", T, None),
    ("model", '"\u0338\u0301\u20d2 onfocus={m} autofocus tabindex=1 x', W, None),
    ("model", '"\u0338><img src=x onerror={m}>', W, None),
    # Other scalars that join the quote into one grapheme: ZWJ and a variation selector (Extend),
    # and a Prepend character (U+0600) before it.
    ("endpoint", '/zw\u200d"\u200d onfocus={m} autofocus tabindex=1 \u200b\u200c\ufeff', W, None),
    ("provider", '\u0600"\u0600 onfocus={m} autofocus tabindex=1 x', W, None),
    ("model", '"\ufe0f onfocus={m} autofocus tabindex=1 x', B, None),
    # Plain breakers: script end, tags with handlers, javascript: URLs, quotes, backticks.
    ("endpoint", "</script><script>{m}</script>", W, None),
    ("provider", "<img src=x onerror={m}>", T, None),
    ("model", "<svg onload={m}>", B, None),
    ("endpoint", "javascript:{m}//", W, None),
    ("provider", '"><a href="javascript:{m}" id=pwn>x</a>', W, None),
    ("model", "`\"'><b onmouseover={m}>`", W, None),
    ("endpoint", '"onfocus="{m}"autofocus tabindex="1', W, None),
    ("provider", "'onmouseover='{m}'", W, None),
    ("provider", 'x" style="position:fixed;inset:0" onmouseover="{m}', T, None),
    # Bidi controls and zero-width characters are not control characters: kept, shown as text.
    ("model", '\u202e"\u2066<b onclick={m}>bidi</b>\u2069', W, None),
    ("endpoint", "</script>\u2028\u2029<script>{m}</script>", W, None),
    # Comments, srcdoc, object/embed, base and meta refresh, mutation-XSS shapes, templates.
    ("endpoint", "<!--<img src=x onerror={m}>-->", W, None),
    ("provider", '<iframe srcdoc="<script>parent.{m}</script>">', W, None),
    ("model", '<object data="javascript:{m}"></object><embed src=javascript:{m}>', W, None),
    ("endpoint", "<base href=//evil.example/><meta http-equiv=refresh content=0;url=javascript:{m}>", W, None),
    ("endpoint", "<math><mtext><table><mglyph><style><img src=x onerror={m}>", W, None),
    ("provider", '<noscript><p title="</noscript><img src=x onerror={m}>">', W, None),
    ("model", "<template><img src=x onerror={m}></template><details open ontoggle={m}>", W, None),
    ("provider", "<style>*{background:url(//evil.example/x)}</style><link rel=stylesheet href=//evil.example/>", W, None),
    # Text that already looks escaped must come back as the same text, not decoded.
    ("provider", "&lt;script&gt;{m}&lt;/script&gt;", W, None),
    ("model", "&amp;&quot;&#39;&#x3C;&NotAnEntity;&#0;&", W, None),
    # Refused per event: control characters (tab, CR LF, NUL at either end, DEL, C1 NEL).
    ("endpoint", 'x\t"onfocus={m} autofocus', W, CONTROL + " (found U+0009"),
    ("endpoint", "\r\n<script>{m}</script>", W, CONTROL + " (found U+000D"),
    ("provider", "\u0000<script>{m}</script>", W, CONTROL + " (found U+0000"),
    ("model", "a<script>{m}</script>b\u0000", W, CONTROL + " (found U+0000"),
    ("endpoint", "\u007f<img src=x onerror={m}>", W, CONTROL + " (found U+007F"),
    ("provider", '\u0085"\u0338onfocus={m}', W, CONTROL + " (found U+0085"),
    # A custom stage name is restricted to [a-z][a-z0-9_]*.
    ("stage", 'x"\u0338onfocus', W, "must match [a-z][a-z0-9_]*"),
]


class Payload(NamedTuple):
    n: int
    field: str
    value: str
    refusal: object  # None when accepted, else words of the 422


def padded(text, size):
    """`text` padded with 2-byte 'é' (and one 'a' if need be) to exactly `size` UTF-8 bytes."""
    need = size - len(text.encode())
    assert need >= 0
    return text + "é" * (need // 2) + "a" * (need % 2)


def build_payloads():
    payloads = [Payload(n, field, template.replace("{m}", MARKERS[kind](n)), refusal)
                for n, (field, template, kind, refusal) in enumerate(TABLE, 1)]
    n = len(payloads) + 1
    # The longest value accepted, 128 bytes, and one byte more.
    payloads.append(Payload(n, "endpoint", padded(f'/"\u0338 onfocus={MARKERS[W](n)} autofocus tabindex=1 <script>{MARKERS[W](n)}</script>', 128), None))
    payloads.append(Payload(n + 1, "model", padded(f"<img src=x onerror={MARKERS[W](n + 1)}>", 129), "must be at most 128 bytes long (got 129)"))
    return payloads


PAYLOADS = build_payloads()
ACCEPTED = [p for p in PAYLOADS if p.refusal is None]
REFUSED = [p for p in PAYLOADS if p.refusal is not None]
ROUND_SIZE = 10  # the top-10 list shows the slowest ten pairs: each round is the slowest when it lands
ROUNDS = [ACCEPTED[i:i + ROUND_SIZE] for i in range(0, len(ACCEPTED), ROUND_SIZE)]
FIELDS = ("endpoint", "provider", "model")
INVALID_UTF8_MARKER = 9999


def labels_of(payload, benign=False):
    labels = {"endpoint": f"/hostile/{payload.n}", "provider": f"prov-{payload.n}", "model": f"model-{payload.n}"}
    if payload.field in labels:
        labels[payload.field] = f"benign-{payload.field}-{payload.n}" if benign else payload.value
    return labels


def event_of(payload, round_index=0, benign=False):
    stages = {"request_parsing": 0.001, "backend_fetch": 1.0 + round_index, "stream_processing": 0.5}
    if payload.field == "stage":
        stages[payload.value] = 0.25
    return {**labels_of(payload, benign), "stages": stages}


def triples(payloads, benign=False):
    return {(l["endpoint"], l["provider"], l["model"]) for l in (labels_of(p, benign) for p in payloads)}


def test_the_payload_table_is_long_and_well_formed():
    assert len(ACCEPTED) >= 25 and len(REFUSED) >= 5
    assert {p.field for p in ACCEPTED} == set(FIELDS), "payloads in endpoint, provider and model"
    assert len({p.value for p in PAYLOADS}) == len(PAYLOADS)
    for payload in ACCEPTED:
        assert 1 <= len(payload.value.encode()) <= 128, payload
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in payload.value), payload
    assert max(len(p.value.encode()) for p in ACCEPTED) == 128
    assert len(ROUNDS) >= 3 and len(triples(ACCEPTED)) == len(ACCEPTED) <= 50  # all listed in the latency table


# --- Reading HTML as a parser does ---------------------------------------------------------------

class Markup(HTMLParser):
    """Every start tag with its attributes (values decoded), every text node (decoded, whole),
    and every comment or declaration, in document order."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.texts = []
        self.others = []
        self._text = []
        self.feed(text)
        self.close()
        self._flush()

    def _flush(self):
        if self._text:
            self.texts.append("".join(self._text))
            self._text = []

    def handle_starttag(self, tag, attrs):
        self._flush()
        self.elements.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self._flush()

    def handle_data(self, data):
        self._text.append(data)

    def handle_comment(self, data):
        self._flush()
        self.others.append(("comment", data))

    def handle_decl(self, decl):
        self._flush()
        self.others.append(("decl", decl))

    def handle_pi(self, data):
        self._flush()
        self.others.append(("pi", data))

    def unknown_decl(self, data):
        self._flush()
        self.others.append(("unknown", data))

    def attribute_values(self, name):
        return [v for _, attrs in self.elements for n, v in attrs if n == name]

    def tags(self):
        # Sparklines draw a polyline or a circle per run of minutes: that may differ by timing.
        return Counter(tag for tag, _ in self.elements if tag not in ("polyline", "circle"))

    def attribute_names(self):
        return {n for _, attrs in self.elements for n, _ in attrs}


URL_ATTRIBUTES = ("href", "src", "action", "formaction", "data", "xlink:href", "poster", "background", "srcdoc", "content")


def markup_problems(hostile_html, benign_html, shown, top):
    """What is wrong with `hostile_html` against the same page over benign labels: handler
    attributes, javascript: URLs, elements, attributes or comments the benign page lacks, and
    payloads (`shown`, and `top` in the top-10 list) that are not back as exactly their text."""
    hostile, benign = Markup(hostile_html), Markup(benign_html)
    problems = []
    for tag, attrs in hostile.elements:
        for name, raw in attrs:
            if name.startswith("on"):
                problems.append(f"<{tag}> has a handler attribute {name}={raw!r}")
            if name in URL_ATTRIBUTES and raw and re.sub(r"[\s\x00-\x1f]", "", raw).lower().startswith(("javascript:", "data:text/html", "vbscript:")):
                problems.append(f"<{tag}> has {name}={raw!r}")
    if hostile.tags() != benign.tags():
        extra, missing = hostile.tags() - benign.tags(), benign.tags() - hostile.tags()
        problems.append(f"elements differ from the benign page: extra {dict(extra)}, missing {dict(missing)}")
    if hostile.attribute_names() - benign.attribute_names():
        problems.append(f"attributes the page never has: {sorted(hostile.attribute_names() - benign.attribute_names())}")
    if Counter(kind for kind, _ in hostile.others) != Counter(kind for kind, _ in benign.others):
        problems.append(f"comments or declarations differ: {hostile.others} against {benign.others}")
    texts = set(hostile.texts)
    for payload in shown:
        if payload.value not in hostile.attribute_values(f"data-{payload.field}"):
            problems.append(f"payload {payload.n} is not the exact value of a data-{payload.field} attribute: {payload.value!r}")
        if payload.value not in texts:
            problems.append(f"payload {payload.n} is not the exact text of a node: {payload.value!r}")
    ranked = {(p, m) for p, m in zip(hostile.attribute_values("data-provider"), hostile.attribute_values("data-model"))}
    for payload in top:
        if payload.field in ("provider", "model"):
            l = labels_of(payload)
            if (l["provider"], l["model"]) not in ranked or l["provider"] not in texts or l["model"] not in texts:
                problems.append(f"payload {payload.n} is not shown as text in the top 10: {payload.value!r}")
    return problems


def csp_directives(header):
    directives = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0].lower()] = tokens[1:]
    return directives


PAGES = ("/", "/?window=5m", "/?fragment=1", "/?window=5m&fragment=1")


# --- One hostile and one benign perfgate, fed round by round ------------------------------------

class Fed(NamedTuple):
    hostile: Perfgate
    benign: Perfgate
    snapshots: list  # per round: {path: (hostile response, benign response)}
    answers: list  # per round: the hostile server's answer to the round's batch
    refusals: dict  # payload n -> answer
    utf8_answer: object
    accepted_before_refusals: object
    accepted_after_refusals: object


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    hostile = Perfgate(tmp_path_factory.mktemp("hostile")).start()
    benign = Perfgate(tmp_path_factory.mktemp("benign")).start()
    try:
        snapshots, answers = [], []
        for index, chunk in enumerate(ROUNDS):
            answers.append(hostile.post_events([event_of(p, index) for p in chunk]))
            assert benign.post_events([event_of(p, index, benign=True) for p in chunk]).status == 200
            snapshots.append({path: (hostile.get(path), benign.get(path)) for path in PAGES})
        before = value(hostile.metrics_text(), "perfgate_events_accepted_total")
        refusals = {p.n: hostile.post_events([event_of(p)]) for p in REFUSED}
        # Invalid UTF-8 inside a gzip body: the JSON is valid but for one byte of a label.
        raw = ('{"endpoint": "/bad-utf8-\xc3\x28<img src=x onerror=window.__pwned_%d=1>", "provider": "p", "model": "m", '
               '"stages": {"backend_fetch": 1}}' % INVALID_UTF8_MARKER).encode("latin-1")
        utf8_answer = hostile.post_events(gzip.compress(raw), headers={"Content-Encoding": "gzip"})
        after = value(hostile.metrics_text(), "perfgate_events_accepted_total")
        yield Fed(hostile, benign, snapshots, answers, refusals, utf8_answer, before, after)
    finally:
        hostile.stop()
        benign.stop()


def test_hostile_labels_are_stored_as_sent_and_control_characters_refused(fed):
    for chunk, answer in zip(ROUNDS, fed.answers):
        assert answer.status == 200 and answer.json() == {"accepted": len(chunk), "rejected": 0, "errors": []}, answer.body
    failures = []
    for payload in REFUSED:
        answer = fed.refusals[payload.n]
        if answer.status != 422:
            failures.append(f"payload {payload.n} ({payload.value!r}): {answer.status} {answer.body[:200]!r}")
            continue
        errors = answer.json()["errors"]
        field = "stages" if payload.field == "stage" else payload.field
        if not any(e["index"] == 0 and e["field"].startswith(field) and payload.refusal in e["error"] for e in errors):
            failures.append(f"payload {payload.n} ({payload.value!r}): {errors} lacks {payload.refusal!r} on {field}")
    assert not failures, "\n".join(failures)
    assert fed.accepted_after_refusals == fed.accepted_before_refusals == len(ACCEPTED), "a refused event was applied"

    # Invalid UTF-8 in a gzipped body is refused (the whole body, 400, as test_hostile pins for a
    # plain body; or per event, 422 naming the field) and never stored.
    answer = fed.utf8_answer
    assert answer.status in (400, 422), answer.body
    assert "UTF-8" in answer.text, answer.body
    if answer.status == 422:
        assert [e["field"] for e in answer.json()["errors"]] == ["endpoint"], answer.body
    text = fed.hostile.metrics_text()
    assert "bad-utf8" not in text and f"__pwned_{INVALID_UTF8_MARKER}" not in text
    for payload in REFUSED:
        assert f"__pwned_{payload.n}=" not in text and f"data-pwned-{payload.n}'" not in text and f"PWNED{payload.n}'" not in text
    series = fed.hostile.get("/v1/series").body.decode("utf-8")
    assert "bad-utf8" not in series and "\ufffd" not in json.dumps(json.loads(series), ensure_ascii=False)


def test_no_label_becomes_markup_on_the_page_or_in_its_fragment(fed):
    failures = []
    shown = []
    for index, chunk in enumerate(ROUNDS):
        shown += chunk
        for path, (hostile, benign) in fed.snapshots[index].items():
            assert hostile.status == 200 and benign.status == 200, (path, hostile.body[:300])
            if "fragment=1" in path:
                assert hostile.text.startswith('<p class="updated">') and "<html" not in hostile.text
            for problem in markup_problems(hostile.text, benign.text, shown, chunk):
                failures.append(f"round {index}, GET {path}: {problem}")
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:60])


def test_the_status_page_policy_forbids_inline_script_and_its_own_script_is_allowed(fed):
    first, second = fed.hostile.get("/"), fed.hostile.get("/")
    for response in (first, second, fed.hostile.get("/?fragment=1")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    header = first.headers["Content-Security-Policy"]
    directives = csp_directives(header)
    assert directives.get("default-src") == ["'none'"], header
    assert "script-src" in directives, f"no script-src: {header}"
    for name in ("script-src", "script-src-elem", "script-src-attr", "default-src"):
        tokens = [t.lower() for t in directives.get(name, [])]
        assert "'unsafe-inline'" not in tokens, f"{name} allows inline script and inline event handlers: {header}"
        assert "'unsafe-eval'" not in tokens and "'unsafe-hashes'" not in tokens and "'wasm-unsafe-eval'" not in tokens, header
        assert not {"*", "data:", "http:", "https:", "blob:"} & set(tokens), header
    assert directives.get("object-src", directives.get("default-src")) == ["'none'"], header
    assert directives.get("base-uri") == ["'none'"] and directives.get("frame-ancestors") == ["'none'"], header
    assert directives.get("form-action") == ["'none'"], header

    # The page's own script must still be allowed: by a nonce fresh in every response, or by its hash.
    page = Markup(fed.benign.get("/").text)
    scripts = [dict(attrs) for tag, attrs in page.elements if tag == "script"]
    assert len(scripts) == 1, "the page has one script of its own"
    source = re.search(r"<script[^>]*>(.*?)</script>", fed.benign.get("/").text, re.S).group(1)
    allowed = directives["script-src"]
    nonces = [t[len("'nonce-"):-1] for t in allowed if t.startswith("'nonce-")]
    hashes = [t for t in allowed if t.startswith("'sha256-")]
    if nonces:
        own = Markup(first.text)
        assert len(nonces) == 1 and [dict(a).get("nonce") for t, a in own.elements if t == "script"] == nonces, (allowed, own.elements[-1])
        nonce = nonces[0]
        bits = len(nonce) * 4 if re.fullmatch(r"[0-9a-fA-F]+", nonce) else len(nonce.rstrip("=")) * 6
        assert re.fullmatch(r"[A-Za-z0-9+/_=-]+", nonce) and bits >= 128, f"a nonce of at least 128 bits: {nonce!r}"
        second_nonces = [t for t in csp_directives(second.headers["Content-Security-Policy"])["script-src"] if t.startswith("'nonce-")]
        assert second_nonces and second_nonces[0] != f"'nonce-{nonces[0]}'", "the nonce must differ per response"
        assert nonces[0] not in fed.hostile.get("/?fragment=1").text
    else:
        digest = "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"
        assert digest in hashes, f"the page's script is allowed by neither a nonce nor its hash: {header}"


def test_labels_round_trip_exactly_in_json_and_in_metrics(fed):
    server = fed.hostile
    expected = triples(ACCEPTED)

    # /v1/series: valid JSON, every value exactly as sent; a selector of each value finds it.
    listing = server.get("/v1/series")
    assert listing.status == 200 and listing.headers["Content-Type"].startswith("application/json")
    entries = json.loads(listing.body.decode("utf-8"))["series"]
    found = {(e["labels"]["endpoint"], e["labels"]["provider"], e["labels"]["model"]) for e in entries if e["metric"] == "backend_ttfb_seconds"}
    assert found == expected
    failures = []
    for payload in ACCEPTED:
        answer = server.get(f"/v1/series?{payload.field}={urllib.parse.quote(payload.value, safe='')}")
        matched = answer.json() if answer.status == 200 else None
        if not matched or matched["matched"] < 1 or any(e["labels"].get(payload.field) != payload.value for e in matched["series"]):
            failures.append(f"payload {payload.n}: selector {payload.field}={payload.value!r} gave {answer.status} {answer.body[:200]!r}")
    assert not failures, "\n".join(failures)

    # /v1/trends by provider and model.
    trends = server.get("/v1/trends?metric=backend_ttfb_seconds&by=provider,model")
    assert trends.status == 200
    groups = {(g["labels"]["provider"], g["labels"]["model"]) for g in json.loads(trends.body.decode("utf-8"))["groups"]}
    assert groups == {(p, m) for _, p, m in expected}

    # /metrics: Prometheus' own parser reads every line, and the values come back exactly.
    text = server.metrics_text()
    parsed = set()
    stages = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "backend_ttfb_seconds_count":
                parsed.add((sample.labels["endpoint"], sample.labels["provider"], sample.labels["model"]))
            if sample.name == "request_stage_duration_seconds_count":
                stages.add((sample.labels["stage"], sample.labels["endpoint"]))
    assert parsed == expected
    assert {e for _, e in stages} == {e for e, _, _ in expected}
    # And the repository's strict reader agrees, line by line.
    assert {(l["endpoint"], l["provider"], l["model"]) for n, l, _ in samples(text) if n == "backend_ttfb_seconds_count"} == expected


def test_every_json_answer_says_nosniff(fed):
    server = fed.benign  # its series are not compared with anything
    answers = {
        "POST /v1/events 200": server.post_events({"endpoint": "/nosniff", "stages": {"backend_fetch": 1}}),
        "POST /v1/events 422": server.post_events({"endpoint": "", "stages": {"backend_fetch": 1}}),
        "POST /v1/events 400": server.post_events("{"),
        "GET /v1/series": server.get("/v1/series?endpoint=/nosniff"),
        "GET /v1/trends": server.get("/v1/trends?metric=backend_ttfb_seconds&by=provider,model"),
        "GET /v1/trends 400": server.get("/v1/trends?metric=nope"),
        "GET /healthz": server.get("/healthz"),
        "GET /readyz": server.get("/readyz"),
        "GET /nowhere 404": server.get("/nowhere"),
        "GET /v1/events 405": server.get("/v1/events"),
        "GET /?window=2h 400": server.get("/?window=2h"),
    }
    missing = [f"{name} ({a.status}, {a.headers['Content-Type']})" for name, a in answers.items()
               if a.headers["Content-Type"].startswith("application/json") and a.headers.get("X-Content-Type-Options") != "nosniff"]
    assert all(a.headers["Content-Type"].startswith("application/json") for a in answers.values())
    assert not missing, "JSON answers without X-Content-Type-Options: nosniff: " + ", ".join(missing)


# --- In headless Chromium --------------------------------------------------------------------

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample,
                               source: e.sourceFile, line: e.lineNumber, disposition: e.disposition});
}, true);
"""

PROBE = """
const all = [document.documentElement, ...document.querySelectorAll('*')];
const attrs = e => Array.from(e.attributes).map(a => a.name);
return {
  globals: Object.getOwnPropertyNames(window).filter(k => k.startsWith('__pwned')),
  frameGlobals: Array.from(document.querySelectorAll('iframe')).flatMap(f => { try { return Object.getOwnPropertyNames(f.contentWindow).filter(k => k.startsWith('__pwned')); } catch (e) { return []; } }),
  title: document.title,
  pwnedAttributes: all.flatMap(e => attrs(e).filter(n => n.startsWith('data-pwned')).map(n => e.tagName.toLowerCase() + '[' + n + ']')),
  handlers: all.flatMap(e => Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => e.tagName.toLowerCase() + '[' + a.name + '=' + a.value + ']')),
  javascriptLinks: Array.from(document.querySelectorAll('[href]')).map(e => e.getAttribute('href')).filter(h => /^\\s*javascript:/i.test(h)),
  url: location.href,
  counts: Object.fromEntries(['script', 'style', 'iframe', 'object', 'embed', 'img', 'base', 'form', 'input', 'math', 'noscript', 'template', 'details', 'meta', 'link', 'video', 'audio', 'frame']
    .map(t => [t, document.getElementsByTagName(t).length])),
  violations: window.__cspViolations || [],
};
"""

EXPECTED_COUNTS = {"script": 1, "style": 1, "meta": 3, "link": 1}

# Fires every event an inline handler could wait for at every element, focuses what is focusable
# and clicks only javascript: links (a real link click would navigate away).
INTERACT = """
const types = ['focus', 'focusin', 'blur', 'focusout', 'click', 'dblclick', 'auxclick', 'contextmenu', 'mouseover', 'mouseenter',
  'mousemove', 'mousedown', 'mouseup', 'mouseout', 'pointerover', 'pointerenter', 'pointerdown', 'pointerup', 'keydown', 'keyup',
  'keypress', 'input', 'change', 'animationstart', 'animationend', 'transitionend', 'load', 'error', 'toggle', 'scroll', 'wheel',
  'copy', 'paste', 'beforeinput', 'submit', 'reset', 'select', 'drag', 'drop'];
const all = Array.from(document.querySelectorAll('*'));
for (const el of all) {
  for (const t of types) { try { el.dispatchEvent(new Event(t)); } catch (e) {} }
  if (el.hasAttribute('tabindex') || el.hasAttribute('autofocus') || el.hasAttribute('contenteditable')) { try { el.focus(); } catch (e) {} }
  if (el.hasAttribute('href') && /^\\s*javascript:/i.test(el.getAttribute('href'))) { try { el.click(); } catch (e) {} }
}
return all.length;
"""

# What the page's own script does every 10 s, done now.
REFRESH = """
const done = arguments[arguments.length - 1];
const q = location.search ? location.search + '&fragment=1' : '?fragment=1';
fetch(location.pathname + q, {credentials: 'same-origin', cache: 'no-store'})
  .then(r => r.ok ? r.text() : Promise.reject('status ' + r.status))
  .then(html => { document.getElementById('status').innerHTML = html; done('ok'); }, e => done('failed: ' + e));
"""


def chromium(extra_arguments=(), performance_log=False):
    if shutil.which("chromedriver") is None:
        raise RuntimeError("chromium-driver is not installed: run scripts/install-test-deps")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1900", *extra_arguments):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if performance_log else {})})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    return driver


def poke_and_probe(driver, settle=1.5):
    """Tabs through the page, fires events at every element, waits for anything asynchronous
    (an image's error), and reads every marker back."""
    with contextlib.suppress(Exception):
        ActionChains(driver).send_keys(Keys.TAB * 80).perform()
    driver.execute_script(INTERACT)
    time.sleep(settle)
    return driver.execute_script(PROBE)


def probe_problems(probe, title, url):
    problems = []
    if probe["globals"] or probe["frameGlobals"]:
        problems.append(f"markers set: {probe['globals'] + probe['frameGlobals']}")
    if probe["title"] != title:
        problems.append(f"title changed to {probe['title']!r}")
    if probe["pwnedAttributes"]:
        problems.append(f"marker attributes: {probe['pwnedAttributes']}")
    if probe["handlers"]:
        problems.append(f"inline handler attributes in the DOM: {probe['handlers'][:8]}")
    if probe["javascriptLinks"]:
        problems.append(f"javascript: links in the DOM: {probe['javascriptLinks'][:5]}")
    if probe["url"] != url:
        problems.append(f"the page navigated to {probe['url']}")
    unexpected = {tag: count for tag, count in probe["counts"].items() if count != EXPECTED_COUNTS.get(tag, 0)}
    if unexpected:
        problems.append(f"elements beyond the page's own: {unexpected}")
    if probe["violations"]:
        problems.append(f"CSP violations: {probe['violations'][:6]}")
    return problems


def test_in_chromium_no_payload_runs_and_the_page_still_refreshes_itself(perfgate):
    url = perfgate.base + "/"
    driver = chromium()
    failures = []
    try:
        assert perfgate.post_events([event_of(p, 0) for p in ROUNDS[0]]).status == 200
        driver.get(url)
        title = "perfgate · where the time goes"
        failures += [f"round 0, page load: {p}" for p in probe_problems(poke_and_probe(driver), title, url)]

        # Each later round arrives the way the page refreshes: the fragment assigned to innerHTML.
        for index, chunk in enumerate(ROUNDS[1:], 1):
            assert perfgate.post_events([event_of(p, index) for p in chunk]).status == 200
            assert driver.execute_async_script(REFRESH) == "ok"
            failures += [f"round {index}, innerHTML refresh: {p}" for p in probe_problems(poke_and_probe(driver), title, url)]

        # Everything at once on a fresh load: the values are in the DOM exactly as sent.
        driver.get(url)
        failures += [f"all rounds, page load: {p}" for p in probe_problems(poke_and_probe(driver), title, url)]
        shown = driver.execute_script("""
            return {
              endpoints: Array.from(document.querySelectorAll('.stage-row')).map(r => [r.getAttribute('data-endpoint'), r.querySelector('.endpoint') && r.querySelector('.endpoint').textContent]),
              pairs: Array.from(document.querySelectorAll('#latency tbody tr')).map(r => [r.getAttribute('data-provider'), r.getAttribute('data-model'),
                       r.cells[0] && r.cells[0].textContent, r.cells[1] && r.cells[1].textContent]),
            };""")
        expected = triples(ACCEPTED)
        endpoints = Counter(a for a, _ in shown["endpoints"])
        if endpoints != Counter(e for e, _, _ in expected):
            failures.append(f"the rows' data-endpoint values are not the endpoints sent: extra {sorted(endpoints - Counter(e for e, _, _ in expected))}, "
                            f"missing {sorted(Counter(e for e, _, _ in expected) - endpoints)}")
        failures += [f"an endpoint's attribute and text differ: {x}" for x in shown["endpoints"] if x[0] != x[1]]
        pairs = Counter((p, m) for p, m, _, _ in shown["pairs"])
        if pairs != Counter((p, m) for _, p, m in expected):
            failures.append(f"the rows' data-provider/data-model values are not the pairs sent: extra {sorted(pairs - Counter((p, m) for _, p, m in expected))}")
        failures += [f"a pair's attributes and text differ: {x}" for x in shown["pairs"] if x[0] != x[2] or x[1] != x[3]]

        # The page's own script still runs under the policy: within a refresh period it fetches the
        # fragment and swaps it in (the sentinel goes, the time moves).
        before = driver.execute_script("""
            const s = document.createElement('span'); s.id = 'refresh-sentinel'; document.getElementById('status').appendChild(s);
            return [document.querySelector('#status time').getAttribute('datetime'),
                    performance.getEntriesByType('resource').filter(e => e.name.includes('fragment=1')).length];""")
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not driver.execute_script("return document.getElementById('refresh-sentinel') === null"):
            time.sleep(0.5)
        after = driver.execute_script("""
            return [document.getElementById('refresh-sentinel') === null, document.querySelector('#status time').getAttribute('datetime'),
                    performance.getEntriesByType('resource').filter(e => e.name.includes('fragment=1')).length];""")
        refreshed = after[0] and after[1] != before[0] and after[2] > before[1]
        probe = poke_and_probe(driver)
        failures += [f"after the page's own refresh: {p}" for p in probe_problems(probe, title, url)]
        assert driver.execute_script("return performance.getEntriesByType('navigation').length") == 1

        if not refreshed:
            failures.append(f"the page did not refresh itself within 25 s (time {before[0]} -> {after[1]}, fragment fetches {before[1]} -> {after[2]})")
        console = driver.get_log("browser")
        failures += [f"CSP violation in the console: {e['message']}" for e in console if "Content Security Policy" in e["message"] or "Content-Security-Policy" in e["message"]]
        failures += [f"console error: {e['message']}" for e in console if e["level"] == "SEVERE" and "Content Security Policy" not in e["message"]]
        assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:60])
    finally:
        driver.quit()


# --- Cross-site writes -------------------------------------------------------------------------

EVIL = "http://evil.example"
NO_CORS = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}
FORM = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Sec-Fetch-User": "?1",
        "Cache-Control": "max-age=0", "Upgrade-Insecure-Requests": "1"}
BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


def csrf_event(name):
    return {"endpoint": f"/csrf/{name}", "provider": "evil", "model": "m", "stages": {"backend_fetch": 1}}


def form_bodies(event):
    text = json.dumps(event, separators=(",", ":"))
    # enctype=text/plain writes name=value: a name ending in '"pad":"' and a value of '"}' make JSON.
    plain = (text[:-1] + ',"pad":"' + "=" + '"}' + "\r\n").encode()
    urlencoded = urllib.parse.urlencode({"event": text}).encode()
    multipart = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{text}\r\n--{BOUNDARY}--\r\n").encode()
    return plain, urlencoded, multipart


def otlp_json(route, trace_byte):
    now = time.time_ns() - 1_000_000_000
    trace_id = (bytes([trace_byte]) * 16).hex()
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": trace_id, "spanId": "0000000000000001", "name": "POST " + route, "startTimeUnixNano": str(now),
         "endTimeUnixNano": str(now + 2_000_000_000), "attributes": [{"key": "http.route", "value": {"stringValue": route}}]},
        {"traceId": trace_id, "spanId": "0000000000000002", "parentSpanId": "0000000000000001", "name": "backend_fetch",
         "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000_000_000)}]}]}]})


def otlp_protobuf(route, trace_byte):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2
    now = time.time_ns() - 1_000_000_000
    trace_id = bytes([trace_byte]) * 16
    root = trace_pb2.Span(trace_id=trace_id, span_id=b"\x00" * 7 + b"\x01", name="POST " + route, start_time_unix_nano=now, end_time_unix_nano=now + 2_000_000_000)
    root.attributes.append(common_pb2.KeyValue(key="http.route", value=common_pb2.AnyValue(string_value=route)))
    child = trace_pb2.Span(trace_id=trace_id, span_id=b"\x00" * 7 + b"\x02", parent_span_id=b"\x00" * 7 + b"\x01", name="backend_fetch",
                           start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000_000)
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend([root, child])
    return request.SerializeToString()


def csrf_cases(port):
    """(case, method, path, headers, body, statuses): what a browser sends cross-site without a
    preflight, and writes from foreign origins however they are typed."""
    def ev(name):
        return json.dumps(csrf_event(name)).encode()
    plain, urlencoded, multipart = form_bodies(csrf_event("form"))
    same_site = {"Origin": f"http://127.0.0.1:{port + 1}", "Sec-Fetch-Site": "same-site"}
    refused = {403, 415}
    return [
        ("no-cors fetch, string body", "POST", "/v1/events", {"Content-Type": "text/plain;charset=UTF-8", **NO_CORS}, ev("fetch"), refused),
        ("no-cors fetch, Blob body (no Content-Type)", "POST", "/v1/events", dict(NO_CORS), ev("blob"), refused),
        ("sendBeacon, string", "POST", "/v1/events", {"Content-Type": "text/plain;charset=UTF-8", **NO_CORS}, ev("beacon"), refused),
        ("sendBeacon, Blob (no Content-Type)", "POST", "/v1/events", dict(NO_CORS), ev("beacon-blob"), refused),
        ("form enctype=text/plain smuggling JSON", "POST", "/v1/events", {"Content-Type": "text/plain", **FORM}, plain, refused),
        ("form urlencoded", "POST", "/v1/events", {"Content-Type": "application/x-www-form-urlencoded", **FORM}, urlencoded, refused),
        ("form multipart", "POST", "/v1/events", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **FORM}, multipart, refused),
        ("same-site no-cors fetch (another port)", "POST", "/v1/events", {"Content-Type": "text/plain;charset=UTF-8", **same_site, "Sec-Fetch-Mode": "no-cors"}, ev("same-site"), refused),
        ("text/plain without browser headers", "POST", "/v1/events", {"Content-Type": "text/plain"}, ev("plain"), {415}),
        ("no Content-Type without browser headers", "POST", "/v1/events", {}, ev("untyped"), {415}),
        ("cross-site JSON", "POST", "/v1/events", {"Content-Type": "application/json", "Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, ev("json"), {403}),
        ("cross-site JSON, Sec-Fetch-Site alone", "POST", "/v1/events", {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, ev("json-sfs"), {403}),
        ("same-site JSON", "POST", "/v1/events", {"Content-Type": "application/json", **same_site, "Sec-Fetch-Mode": "cors"}, ev("json-same-site"), {403}),
        ("foreign Origin, JSON, no Sec-Fetch", "POST", "/v1/events", {"Content-Type": "application/json", "Origin": EVIL}, ev("json-origin"), {403}),
        ("Origin of another port", "POST", "/v1/events", {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port + 1}"}, ev("json-port"), {403}),
        ("Origin of another host name", "POST", "/v1/events", {"Content-Type": "application/json", "Origin": f"http://localhost:{port}"}, ev("json-host"), {403}),
        ("Origin null (sandboxed frame, data: URL)", "POST", "/v1/events", {"Content-Type": "application/json", "Origin": "null"}, ev("json-null"), {403}),
        ("cross-site NDJSON", "POST", "/v1/events", {"Content-Type": "application/x-ndjson", "Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, ev("ndjson") + b"\n", {403}),
        ("cross-site gzip JSON", "POST", "/v1/events", {"Content-Type": "application/json", "Content-Encoding": "gzip", "Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, gzip.compress(ev("gzip")), {403}),
        ("traces: no-cors fetch, string body", "POST", "/v1/traces", {"Content-Type": "text/plain;charset=UTF-8", **NO_CORS}, otlp_json("/csrf/traces-plain", 0x31).encode(), refused),
        ("traces: no-cors fetch, Blob body", "POST", "/v1/traces", dict(NO_CORS), otlp_json("/csrf/traces-blob", 0x32).encode(), refused),
        ("traces: form urlencoded", "POST", "/v1/traces", {"Content-Type": "application/x-www-form-urlencoded", **FORM}, urllib.parse.urlencode({"x": otlp_json("/csrf/traces-form", 0x33)}).encode(), refused),
        ("traces: form multipart", "POST", "/v1/traces", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **FORM}, multipart, refused),
        ("traces: cross-site JSON", "POST", "/v1/traces", {"Content-Type": "application/json", "Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, otlp_json("/csrf/traces-json", 0x34).encode(), {403}),
        ("traces: cross-site protobuf", "POST", "/v1/traces", {"Content-Type": "application/x-protobuf", "Sec-Fetch-Site": "cross-site"}, otlp_protobuf("/csrf/traces-pb", 0x35), {403}),
        ("traces: foreign Origin, protobuf", "POST", "/v1/traces", {"Content-Type": "application/x-protobuf", "Origin": EVIL}, otlp_protobuf("/csrf/traces-pb-origin", 0x36), {403}),
        ("delete: cross-site", "DELETE", "/v1/series?endpoint=/keep", {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, None, {403}),
        ("delete: foreign Origin", "DELETE", "/v1/series?endpoint=/keep", {"Origin": EVIL}, None, {403}),
        ("delete: same-site", "DELETE", "/v1/series?endpoint=/keep", same_site, None, {403}),
    ]


def ingest_counts(server):
    text = server.metrics_text()
    return {
        "accepted": value(text, "perfgate_events_accepted_total"),
        "spans": value(text, "perfgate_otlp_spans_received_total"),
        "traces": value(text, "perfgate_otlp_traces_total", outcome="event"),
        "csrf series": sum(1 for n, l, _ in samples(text) if l.get("endpoint", "").startswith("/csrf")),
        "keep series": sum(1 for n, l, _ in samples(text) if l.get("endpoint") == "/keep" and n.endswith("_count")),
    }


def test_writes_a_browser_can_send_cross_site_are_refused_and_apply_nothing(perfgate):
    assert perfgate.post_events([{"endpoint": "/keep", "provider": "p", "model": "m", "stages": {"backend_fetch": 1}}]).status == 200
    before = ingest_counts(perfgate)
    assert before["accepted"] == 1 and before["keep series"] > 0
    failures = []
    for name, method, path, headers, body, statuses in csrf_cases(perfgate.port):
        answer = perfgate.request(method, path, body, headers)
        counts = ingest_counts(perfgate)
        if answer.status not in statuses:
            failures.append(f"{name}: {answer.status} (wanted {sorted(statuses)}) {answer.body[:160]!r}")
        elif counts != before:
            failures.append(f"{name}: refused with {answer.status} but something was applied: {before} -> {counts}")
        before = counts
    assert not failures, f"{len(failures)} cross-site writes not refused:\n" + "\n".join(failures)
    assert perfgate.get("/v1/series?endpoint=/keep").json()["matched"] > 0


def test_same_origin_pages_and_non_browser_clients_still_write(perfgate):
    own = {"Origin": perfgate.base, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    event = lambda name: json.dumps({"endpoint": f"/ok/{name}", "provider": "p", "model": "m", "stages": {"backend_fetch": 1}}).encode()
    cases = [
        ("same-origin fetch", "/v1/events", {"Content-Type": "application/json", **own}, event("same-origin")),
        ("Origin alone, equal to the Host", "/v1/events", {"Content-Type": "application/json", "Origin": perfgate.base}, event("origin")),
        ("Sec-Fetch-Site none", "/v1/events", {"Content-Type": "application/json", "Sec-Fetch-Site": "none"}, event("none")),
        ("curl --json", "/v1/events", {"Content-Type": "application/json", "Accept": "application/json"}, event("curl")),
        ("charset parameter", "/v1/events", {"Content-Type": "application/json; charset=utf-8"}, event("charset")),
        ("NDJSON", "/v1/events", {"Content-Type": "application/x-ndjson"}, event("ndjson") + b"\n" + event("ndjson2") + b"\n"),
        ("application/ndjson", "/v1/events", {"Content-Type": "application/ndjson"}, event("ndjson3") + b"\n"),
        ("application/jsonl", "/v1/events", {"Content-Type": "application/jsonl"}, event("jsonl") + b"\n"),
        ("gzip JSON", "/v1/events", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip.compress(event("gzip"))),
        ("same-origin gzip NDJSON", "/v1/events", {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip", **own}, gzip.compress(event("gzip-nd") + b"\n")),
        ("OTLP protobuf", "/v1/traces", {"Content-Type": "application/x-protobuf"}, otlp_protobuf("/ok/otlp-pb", 0x41)),
        ("OTLP JSON, same origin", "/v1/traces", {"Content-Type": "application/json", **own}, otlp_json("/ok/otlp-json", 0x42).encode()),
    ]
    failures = []
    for name, path, headers, body in cases:
        answer = perfgate.request("POST", path, body, headers)
        if answer.status != 200:
            failures.append(f"{name}: {answer.status} {answer.body[:200]!r}")
    assert not failures, "\n".join(failures)

    # The OpenTelemetry SDK's own exporter and perfgate's Python client, unmodified.
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{perfgate.base}/v1/traces", timeout=10)))
    tracer = provider.get_tracer("perfgate-browser-attacks")
    with tracer.start_as_current_span("POST /ok/sdk", attributes={"http.route": "/ok/sdk"}):
        with tracer.start_as_current_span("backend_fetch", attributes={"gen_ai.provider.name": "sdk", "gen_ai.request.model": "m"}):
            time.sleep(0.01)
    assert provider.force_flush(10_000)
    provider.shutdown()

    from perfgate import PerformanceTracker, Sender
    sender = Sender(perfgate.base, flush_interval=0.05)
    tracker = PerformanceTracker("/ok/python-client", sender=sender)
    with tracker.backend_request(provider="py", model="m"):
        time.sleep(0.01)
    tracker.record_percentages()
    assert sender.flush(10)
    sender.close()

    text = perfgate.metrics_text()
    endpoints = {l["endpoint"] for n, l, _ in samples(text) if n == "backend_ttfb_seconds_count"}
    wanted = {f"/ok/{name}" for name in ("same-origin", "origin", "none", "curl", "charset", "ndjson", "ndjson2", "ndjson3", "jsonl", "gzip",
                                         "gzip-nd", "otlp-pb", "otlp-json", "sdk", "python-client")}
    assert wanted <= endpoints, f"missing: {sorted(wanted - endpoints)}"

    # An admin deleting series from the same origin, or from curl, still can.
    deleted = perfgate.request("DELETE", "/v1/series?endpoint=/ok/curl", headers={"Origin": perfgate.base, "Sec-Fetch-Site": "same-origin"})
    assert deleted.status == 200 and deleted.json()["deleted"] > 0
    assert perfgate.request("DELETE", "/v1/series?endpoint=/ok/none").status == 200


def test_allowed_origins_admit_exactly_the_origins_named(make_perfgate):
    server = make_perfgate(args=["--allowed-origins", "http://dash.example,https://b.example:8443"]).start()
    event = lambda name: json.dumps({"endpoint": f"/allowed/{name}", "stages": {"backend_fetch": 1}}).encode()
    cors = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    admitted = [
        ("dash.example from a browser", {"Origin": "http://dash.example", **cors}),
        ("dash.example, Origin alone", {"Origin": "http://dash.example"}),
        ("b.example on its port", {"Origin": "https://b.example:8443", **cors}),
        ("own origin", {"Origin": server.base, "Sec-Fetch-Site": "same-origin"}),
        ("no browser headers", {}),
    ]
    refused = [
        ("another scheme", {"Origin": "https://dash.example", **cors}),
        ("another port", {"Origin": "http://dash.example:8080", **cors}),
        ("a longer name", {"Origin": "http://dash.example.evil.example", **cors}),
        ("a sub-domain", {"Origin": "http://evil.dash.example", **cors}),
        ("b.example without its port", {"Origin": "https://b.example", **cors}),
        ("evil.example", {"Origin": EVIL, **cors}),
        ("cross-site, no Origin", cors),
    ]
    failures = []
    for index, (name, headers) in enumerate(admitted):
        answer = server.post_events(event(f"in-{index}"), headers=headers)
        if answer.status != 200:
            failures.append(f"admitted {name}: {answer.status} {answer.body[:160]!r}")
    for index, (name, headers) in enumerate(refused):
        answer = server.post_events(event(f"out-{index}"), headers=headers)
        if answer.status != 403:
            failures.append(f"refused {name}: {answer.status} {answer.body[:160]!r}")
    # An allowed origin still cannot post a type a form or a no-cors fetch sends.
    answer = server.post_events(event("plain"), content_type="text/plain;charset=UTF-8", headers={"Origin": "http://dash.example", **cors, "Sec-Fetch-Mode": "no-cors"})
    if answer.status not in (403, 415):
        failures.append(f"text/plain from an allowed origin: {answer.status}")
    assert not failures, "\n".join(failures)
    endpoints = {l["endpoint"] for n, l, _ in samples(server.metrics_text()) if n == "request_stage_duration_seconds_count"}
    assert endpoints == {f"/allowed/in-{i}" for i in range(len(admitted))}


class AttackerSite:
    """A page on another loopback port: another origin than perfgate's."""

    def __init__(self, page):
        body = page.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cute cats</title></head><body>
<iframe name="f1"></iframe><iframe name="f2"></iframe><iframe name="f3"></iframe>
<form method="POST" enctype="text/plain" target="f1" action="EVENTS"><input name='PLAINNAME' value='"}'></form>
<form method="POST" target="f2" action="EVENTS"><input name="event" value='EVENTJSON'></form>
<form method="POST" enctype="multipart/form-data" target="f3" action="EVENTS"><input name="event" value='EVENTJSON'></form>
<script>
const events = "EVENTS", traces = "TRACES";
const body = JSON.stringify(EVENT), otlp = JSON.stringify(OTLP);
const tries = [
  fetch(events, {method: "POST", mode: "no-cors", body: body}),
  fetch(events, {method: "POST", mode: "no-cors", body: new Blob([body])}),
  fetch(events, {method: "POST", mode: "no-cors", body: new Blob([body], {type: "application/json"})}),
  fetch(events, {method: "POST", mode: "no-cors", headers: {"Content-Type": "application/json"}, body: body}),
  fetch(traces, {method: "POST", mode: "no-cors", body: otlp}),
  fetch(traces, {method: "POST", mode: "no-cors", body: new Blob([otlp])}),
];
const beacons = [navigator.sendBeacon(events, body), navigator.sendBeacon(events, new Blob([body]))];
for (const form of document.forms) form.submit();
Promise.allSettled(tries).then(() => { document.title = "attacked " + beacons.join(","); });
</script></body></html>
"""


def attack_page(base, name):
    event = csrf_event(f"browser-{name}")
    text = json.dumps(event, separators=(",", ":"))
    page = ATTACK_PAGE.replace("EVENTS", f"{base}/v1/events").replace("TRACES", f"{base}/v1/traces")
    page = page.replace("PLAINNAME", text[:-1] + ',"pad":"').replace("EVENTJSON", text.replace("'", "&#39;"))
    return page.replace("EVENT", text).replace("OTLP", otlp_json(f"/csrf/browser-{name}-otlp", 0x51))


def posts_seen(log, base):
    """What Chromium sent to perfgate and what perfgate answered, from DevTools network log entries."""
    sent, headers, answered, failed = {}, {}, {}, {}
    for entry in log:
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent" and params["request"]["url"].startswith(base) and params["request"]["method"] != "GET":
            sent[params["requestId"]] = (params["request"]["method"], params["request"]["url"], params["request"].get("headers", {}).get("Content-Type"))
        elif message["method"] == "Network.requestWillBeSentExtraInfo":
            headers[params["requestId"]] = {k.lower(): v for k, v in params.get("headers", {}).items()}
        elif message["method"] == "Network.responseReceived":
            answered[params["requestId"]] = params["response"]["status"]
        elif message["method"] == "Network.loadingFailed":
            failed[params["requestId"]] = params.get("errorText")
    return [(sent[i], headers.get(i, {}).get("sec-fetch-site"), headers.get(i, {}).get("origin"), answered.get(i), failed.get(i)) for i in sent]


# Per attack page: four no-cors fetches and two sendBeacons to /v1/events, two no-cors fetches to
# /v1/traces, three form posts.
ATTACK_REQUESTS = 11


def test_a_page_on_another_origin_cannot_write_through_a_real_browser(perfgate):
    assert perfgate.post_events([{"endpoint": "/keep", "provider": "p", "model": "m", "stages": {"backend_fetch": 1}}]).status == 200
    before = ingest_counts(perfgate)
    sites = {name: AttackerSite(attack_page(perfgate.base, name)) for name in ("same-site", "cross-site")}
    # evil.example is resolved by the browser itself to 127.0.0.1: a cross-site page without any
    # traffic leaving the loopback interface (127.0.0.1 on another port is merely same-site).
    driver = chromium(["--host-resolver-rules=MAP evil.example 127.0.0.1",
                       "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,IsolateOrigins,site-per-process",
                       "--disable-site-isolation-trials"], performance_log=True)
    seen = []
    try:
        for name, host in (("same-site", "127.0.0.1"), ("cross-site", "evil.example")):
            driver.get(f"http://{host}:{sites[name].port}/")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not driver.title.startswith("attacked"):
                time.sleep(0.2)
            assert driver.title.startswith("attacked"), f"the {name} attack page did not finish: {driver.title!r}"
            # The form posts and beacons land in their own time.
            log = []
            while time.monotonic() < deadline + 10:
                log += driver.get_log("performance")
                if sum(1 for post in posts_seen(log, perfgate.base) if post[3] is not None) >= ATTACK_REQUESTS:
                    break
                time.sleep(0.5)
            seen += [(name, *post) for post in posts_seen(log, perfgate.base)]
    finally:
        driver.quit()
        for site in sites.values():
            site.close()
    after = ingest_counts(perfgate)
    report = "\n".join(f"{name}: {request} sec-fetch-site={site} origin={origin} -> {status} {error or ''}" for name, request, site, origin, status, error in seen)
    # Chromium sent every write and perfgate answered each (a vacuous pass is no pass).
    for name in sites:
        assert sum(1 for s in seen if s[0] == name and s[4] is not None) == ATTACK_REQUESTS, f"not every request of the {name} page reached perfgate:\n{report}"
    applied = [s for s in seen if s[4] is not None and s[4] < 300]
    assert not applied, f"perfgate accepted cross-origin writes:\n{report}"
    assert after == before, f"something was applied: {before} -> {after}\n{report}"
    # What Chromium called them: 127.0.0.1 on another port is same-site, evil.example cross-site.
    assert {s[2] for s in seen if s[0] == "cross-site"} == {"cross-site"} and {s[2] for s in seen if s[0] == "same-site"} == {"same-site"}, report


# --- /readyz -----------------------------------------------------------------------------------

INGEST = "ingest-readyz-0123456789abcdef"
READ = "read-readyz-0123456789abcdef"
ADMIN = "admin-readyz-0123456789abcdef"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def tokens_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"ingest {INGEST}\nread {READ}\nadmin {ADMIN}\n")
    return path


def test_readyz_without_a_token_says_ready_and_nothing_else(make_perfgate, tmp_path):
    server = make_perfgate(args=["--tokens-file", str(tokens_file(tmp_path))]).start()
    answer = server.get("/readyz")
    assert answer.status == 200 and answer.json() == {"ready": True}
    assert answer.headers["Content-Type"].startswith("application/json")
    assert server.get("/readyz", headers=bearer(READ)).json()["ready"] is True


@contextlib.contextmanager
def mounted(*mount_args, target):
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *mount_args, str(target)], check=True, timeout=10)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True, timeout=10)


def fill(folder):
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(chunk)
    return filler


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="a full disk needs root to mount a small tmpfs")
def test_readyz_says_why_not_ready_without_naming_paths_unless_asked_with_a_read_token(tmp_path):
    with mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", target=tmp_path / "small") as small:
        database = small / "perfgate.sqlite"
        server = Perfgate(tmp_path, ["--db", str(database), "--tokens-file", str(tokens_file(tmp_path))]).start()
        try:
            batch = lambda name: [{"endpoint": f"/{name}/{n}", "provider": "disk", "model": name, "stages": {"backend_fetch": 0.2}} for n in range(20)]
            assert server.post_events(batch("before"), headers=bearer(INGEST)).status == 200
            filler = fill(small)
            refusal = None
            for attempt in range(200):
                response = server.post_events(batch(f"full-{attempt}"), headers=bearer(INGEST))
                if response.status != 200:
                    refusal = response
                    break
            assert refusal is not None and refusal.status == 503, "the store never filled up"

            anonymous = server.get("/readyz")
            detailed = server.get("/readyz", headers=bearer(READ))
            assert anonymous.status == 503 and detailed.status == 503
            answer = anonymous.json()
            assert answer["ready"] is False and isinstance(answer.get("reason"), str) and answer["reason"].strip(), anonymous.body
            text = anonymous.text
            host = socket.gethostname()
            leaks = [word for word in (str(database), str(small), str(tmp_path), "perfgate.sqlite", ".sqlite", *([host] if len(host) >= 4 else [])) if word in text]
            assert not leaks, f"an unauthenticated /readyz names {leaks}: {text}"
            assert not re.search(r"/[\w.-]+/[\w.-]+/[\w.-]+", text), f"an unauthenticated /readyz names a path: {text}"
            assert not re.search(r"\b(root|postgres)\b", text), f"an unauthenticated /readyz names a user: {text}"

            # The details go to a read token, and to the log.
            assert str(database) in detailed.text and "is full" in detailed.text, detailed.body
            assert str(database) in server.log_path.read_text()

            filler.unlink()
            assert server.post_events(batch("after"), headers=bearer(INGEST)).status == 200
        finally:
            server.stop(signal.SIGKILL)
