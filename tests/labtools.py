"""JupyterLab started exactly as `make lab` starts it (scripts/lab.sh), headless on a free port, for the
server-path and browser tests; stopped with everything it started, and checked that nothing is left."""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Failure(Exception):
    pass


def request(method, url, token, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read()
        return json.loads(text) if text else None


def listening(port):
    """True when something accepts connections on the port (a closed server's TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LabServer:
    """`with LabServer(...) as lab:` gives lab.port, lab.token, lab.url(path), lab.api(method, path, body)."""

    def __init__(self, first_port=8890, extra_args=(), log_name="lab-server.log", profile=None):
        self.token = secrets.token_hex(16)
        self.first_port = first_port
        self.extra_args = list(extra_args)
        self.log_path = ROOT / "out" / log_name
        self.profile = profile or os.environ.get("FMNIST_PROFILE", "smoke")
        self.port = None
        self.server = None
        self.started = None
        self.up_seconds = None
        self.leftover = None

    def __enter__(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PORT=str(self.first_port), NO_BROWSER="1", JUPYTER_TOKEN=self.token,
                   FMNIST_PROFILE=self.profile)
        self.started = time.time()
        self.server = subprocess.Popen([str(ROOT / "scripts" / "lab.sh"), *self.extra_args], cwd=ROOT, env=env,
                                       stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline and self.server.poll() is None:
            m = re.search(r"\[lab\] open:\s+http://127\.0\.0\.1:(\d+)/lab\?token=(\w+)", self.log_path.read_text())
            if m:
                self.port = int(m.group(1))
                try:
                    self.api("GET", "/api/status", timeout=2)
                    self.up_seconds = time.time() - self.started
                    return self
                except OSError:
                    pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise Failure(f"the server did not come up (see {self.log_path}):\n{self.log_path.read_text()[-1500:]}")

    def url(self, path):
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{sep}token={self.token}"

    def api(self, method, path, body=None, timeout=30):
        return request(method, f"http://127.0.0.1:{self.port}{path}", self.token, body, timeout)

    def __exit__(self, *exc):
        try:
            os.killpg(self.server.pid, signal.SIGTERM)
            self.server.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self._log.close()
        time.sleep(1)
        try:
            os.killpg(self.server.pid, 0)
            self.leftover = f"processes of the server's group {self.server.pid} still run"
        except ProcessLookupError:
            pass
        if self.port and listening(self.port):
            self.leftover = f"something still listens on port {self.port}"
        return False
