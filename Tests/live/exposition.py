"""Reads /metrics text exactly: sample values stay decimal text, compared as Decimal."""

import re
from decimal import Decimal

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(value):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def samples(text):
    """Yields (name, labels dict, value text) for every sample line."""
    # Lines end at \n only: splitlines() would also split a label value at U+2028 or U+0085.
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = {k: unescape(v) for k, v in LABEL.findall(match.group(3) or "")}
        yield match.group(1), labels, match.group(4)


def value(text, name, **labels):
    """The value of the sample with exactly these labels, as Decimal; None when absent."""
    for sample_name, sample_labels, raw in samples(text):
        if sample_name == name and sample_labels == labels:
            return Decimal(raw) if raw not in ("+Inf", "-Inf", "NaN") else raw
    return None


def total(text, name):
    """The sum of every sample of one name, whatever its labels, as Decimal."""
    return sum((Decimal(raw) for sample_name, _, raw in samples(text) if sample_name == name), Decimal(0))


def series(text, name):
    """Every sample of one name: {frozenset(labels): Decimal value}."""
    return {frozenset(l.items()): Decimal(v) for n, l, v in samples(text) if n == name}
