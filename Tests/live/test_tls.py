"""HTTPS with a certificate the test makes: served, verified by a real TLS client, and refused
at start-up when the files are wrong."""

import http.client
import socket
import ssl
import subprocess

import pytest

from conftest import BINARY

EVENT = {"endpoint": "/secure", "provider": "p", "model": "m", "stages": {"backend_fetch": 0.5}}


def make_certificate(folder, name):
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, by the openssl tool."""
    certificate, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(certificate), "-days", "1", "-subj", "/CN=perfgate-test",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )
    return certificate, key


def start_failure(tmp_path, args):
    result = subprocess.run([str(BINARY), "serve", "--port", "0", *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_serves_https_that_a_verifying_client_accepts(make_perfgate, tmp_path):
    certificate, key = make_certificate(tmp_path, "server")
    context = ssl.create_default_context(cafile=str(certificate))
    server = make_perfgate(["--tls-certificate", str(certificate), "--tls-key", str(key)], ssl_context=context).start()

    assert server.post_events(EVENT).status == 200
    assert 'backend_ttfb_seconds_count{provider="p",model="m",endpoint="/secure"} 1' in server.metrics_text()

    # A client that does not trust the certificate refuses the connection.
    untrusting = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.request("GET", "/healthz")
    untrusting.close()

    # Plain HTTP on the TLS port gets no HTTP answer.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: perfgate\r\n\r\n")
        try:
            answer = plain.recv(65536)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/1.1 200")


def test_wrong_tls_files_stop_start_up_naming_the_file(tmp_path):
    certificate, key = make_certificate(tmp_path, "one")
    _, other_key = make_certificate(tmp_path, "two")
    assert "does not belong to the certificate" in start_failure(tmp_path, ["--tls-certificate", str(certificate), "--tls-key", str(other_key)])
    assert f"--tls-certificate {key}: not a PEM certificate chain" in start_failure(tmp_path, ["--tls-certificate", str(key), "--tls-key", str(key)])
    assert "--tls-key /nowhere/key.pem: no readable file there" in start_failure(tmp_path, ["--tls-certificate", str(certificate), "--tls-key", "/nowhere/key.pem"])
    assert "give --tls-certificate and --tls-key together" in start_failure(tmp_path, ["--tls-certificate", str(certificate)])
