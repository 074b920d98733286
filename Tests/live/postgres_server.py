"""A throwaway PostgreSQL server (Debian's postgresql package) in a temporary folder, on a loopback port.

PostgreSQL refuses to run as root: when the tests run as root (as CI does), the cluster belongs
to the `postgres` user the package creates and its commands run as that user. Logins are
trusted on loopback as user `perfgate`, a superuser; nothing listens beyond 127.0.0.1.
"""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from server_process import free_port


def binaries():
    """The folder holding initdb, pg_ctl and postgres, or None when PostgreSQL is not installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class PostgresServer:
    USER = "perfgate"

    def __init__(self, tls=False):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (scripts/install-test-deps installs Debian's postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="perfgate-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o755)
        self._run(["initdb", "-D", str(self.data), "-U", self.USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
        self._databases = 0
        self.certificate = None
        if tls:
            self._require_tls()

    def _require_tls(self):
        """A self-signed certificate for 127.0.0.1 (its own CA), and TCP logins over TLS only."""
        key, certificate = self.data / "server.key", self.data / "server.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
            check=True, capture_output=True,
        )
        (self.data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        self.certificate = self.root / "ca.crt"
        shutil.copy(certificate, self.certificate)
        os.chmod(key, 0o600)
        if self.as_root:
            for path in (key, certificate, self.data / "pg_hba.conf"):
                shutil.chown(path, "postgres", "postgres")

    def _command(self, argv):
        tool = os.path.join(self.bin, argv[0])
        command = [tool, *argv[1:]]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def _run(self, argv, check=True):
        return subprocess.run(self._command(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=check, cwd=self.root)

    def start(self):
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"])
        return self

    def stop(self, mode="fast"):
        """Stops the server: `fast` rolls back open transactions, `immediate` is a crash."""
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], check=False)

    @contextlib.contextmanager
    def restarted_at_exit(self):
        """Makes sure the server runs again when the block ends, however it ends."""
        try:
            yield self
        finally:
            if self._run(["pg_ctl", "-D", str(self.data), "status"], check=False).returncode != 0:
                self.start()

    def psql(self, sql, database="postgres"):
        result = subprocess.run(
            [os.path.join(self.bin, "psql") if os.path.exists(os.path.join(self.bin, "psql")) else "psql",
             "-h", str(self.root), "-p", str(self.port), "-U", self.USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True, text=True,
        )
        return result.stdout.strip()

    def new_database(self):
        """A new empty database; returns its postgres:// URL."""
        self._databases += 1
        name = f"perfgate_{self._databases}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, database):
        return f"postgres://{self.USER}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def wait_until_answering(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.psql("SELECT 1")
                return
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not answer within {timeout}s:\n{self.log.read_text() if self.log.exists() else ''}")

    def remove(self):
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    # For the Swift tests: starts a server, prints the URL of its maintenance database on one line,
    # and removes the server when stdin closes (the caller exits or closes the pipe).
    import sys

    server = PostgresServer().start()
    try:
        print(server.url("postgres"), flush=True)
        sys.stdin.read()
    finally:
        server.remove()
