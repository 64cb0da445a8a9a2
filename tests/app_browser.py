"""
Helpers for end-to-end tests in a real browser: the FiftyOne App server in
a subprocess, and Debian's Chromium driven by Playwright.

Playwright's own browser download is not used: the tests drive a system
Chromium (``/usr/bin/chromium`` on Debian, the copy ``scripts/chromium.sh``
unpacks into ``.cache/chromium/``, or ``$DCD_CHROMIUM``).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Headless, and nothing that reaches out: on a closed network Chromium's
# background requests (updates, sync, QUIC) fail and slow it down. A fresh
# --user-data-dir is Playwright's own: launch() gives each browser a new
# temporary profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome"]


def find_chromium():
    """The path of a Chromium executable, or None."""
    explicit = os.environ.get("DCD_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None

    # Debian's package, or the copy scripts/chromium.sh unpacked when it
    # could not install it
    cache = os.environ.get("DCD_CHROMIUM_CACHE") or os.path.join(
        ROOT, ".cache", "chromium"
    )
    for path in ("/usr/bin/chromium", os.path.join(cache, "chromium")):
        if os.access(path, os.X_OK):
            return path

    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path

    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class AppServer(object):
    """The FiftyOne App server (``python -m fiftyone.server.main``) in a
    subprocess, on a free port of 127.0.0.1, with this repository as its
    plugins folder and this process's database.

    The tests' database is named by ``FIFTYONE_DATABASE_URI`` (see
    ``conftest.py``), which the server inherits. Without it, FiftyOne's
    database service is found by its command line, not by
    ``FIFTYONE_DATABASE_DIR``, so the server is given the port of the
    ``mongod`` this process is connected to
    (``FIFTYONE_PRIVATE_DATABASE_PORT``, which FiftyOne sets once a
    connection is made): both talk to the same database for sure.
    """

    def __init__(self, plugins_dir, log_dir=None):
        self.plugins_dir = plugins_dir
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="dcd-app-")
        self.log_path = os.path.join(self.log_dir, "app_server.log")
        self.proc = None
        self._log = None

    def start(self, timeout=240):
        import fiftyone.core.odm.database as fod

        fod.get_db_conn()  # connects, and sets the private port
        env = dict(os.environ)
        env.update(
            FIFTYONE_PLUGINS_DIR=self.plugins_dir,
            FIFTYONE_DO_NOT_TRACK="true",
            OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        )
        # a database named by FIFTYONE_DATABASE_URI is inherited as it is;
        # FiftyOne's own service, by the port this process connected to
        port = os.environ.get("FIFTYONE_PRIVATE_DATABASE_PORT")
        if port and "FIFTYONE_DATABASE_URI" not in os.environ:
            env["FIFTYONE_PRIVATE_DATABASE_PORT"] = port
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fiftyone.server.main",
                "--port",
                str(self.port),
                "--address",
                "127.0.0.1",
            ],
            cwd=self.plugins_dir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "The App server exited with %s:\n%s"
                    % (self.proc.returncode, self.log())
                )

            if _answers(self.url + "/fiftyone"):
                return self

            time.sleep(0.5)

        self.stop()
        raise RuntimeError(
            "The App server did not answer in %ds:\n%s" % (timeout, self.log())
        )

    def log(self, tail=6000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-tail:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            # its own session: the server and any children it started
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)

        if self._log is not None:
            self._log.close()
            self._log = None


def launch_browser(playwright, executable):
    return playwright.chromium.launch(
        executable_path=executable, args=CHROMIUM_ARGS, headless=True
    )


def dataset_url(server, name, view=None):
    from urllib.parse import quote

    url = "%s/datasets/%s" % (server.url, quote(name))
    if view is not None:
        url += "?view=" + quote(view)

    return url
