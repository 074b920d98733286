"""schemathesis, an outside contract checker, against a live perfgate over docs/openapi.yaml:
every check it has (Tests/live/schemathesis/schemathesis.toml lists the few rules OpenAPI cannot
state and why), a fixed seed, with an admin token, with no token against a guarded perfgate, and
against an open one."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parent / "schemathesis" / "schemathesis.toml"
ADMIN = "admin-schemathesis-0123456789"


def schemathesis(server, *headers):
    # Through this interpreter, where install-test-deps put it, whatever is on PATH.
    command = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", "--config-file", str(CONFIG), "run", str(ROOT / "docs" / "openapi.yaml"),
               "--url", server.base, "--seed", "20261201", "--max-examples", "80", "--workers", "1",
               "--request-timeout", "10", "--max-failures", "20", "--generation-database", "none"]
    for header in headers:
        command += ["-H", header]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "generated" in summary, summary
    return summary


@pytest.fixture
def guarded(make_perfgate):
    return make_perfgate(env={"PERFGATE_ADMIN_TOKENS": ADMIN}).start()


def test_the_document_holds_with_an_admin_token(guarded):
    schemathesis(guarded, f"Authorization: Bearer {ADMIN}")


def test_the_document_holds_without_a_token(guarded):
    # Every guarded operation answers 401 as documented; the probes still answer.
    schemathesis(guarded)


def test_the_document_holds_for_an_open_perfgate(perfgate):
    schemathesis(perfgate)
