"""Starting the dashboard: ``xai-core serve --logdir DIR`` and ``xai_core.serve(DIR)``.

The dashboard is a Streamlit app: ``app.py`` (the frame) and ``pages/`` beside it. In a source
checkout or an editable install they sit next to the ``xai_core`` package; a built wheel carries
a copy inside the package (``xai_core/_app/``, made by ``setup.py``'s build step), so an installed
``xai-core`` serves without the repository. The server runs as ``python -m streamlit run`` in a
subprocess with the flags ``.streamlit/config.toml`` sets for the repository (loopback, no file
watching, no usage statistics), so the working directory does not matter.

This module never imports Streamlit.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .errors import ConfigError, XaiError

PACKAGE = Path(__file__).resolve().parent


def app_script() -> Path:
    """The dashboard's entry file: the packaged copy of a wheel install, else the repository's."""
    for root in (PACKAGE / "_app", PACKAGE.parent):
        script = root / "app.py"
        if script.is_file() and (root / "pages" / "_common.py").is_file():
            return script
    raise XaiError(f"the dashboard app (app.py and pages/) is not installed beside {PACKAGE}; reinstall xaiboard "
                   "(pip install xaiboard, or pip install -e . in a checkout)")


def streamlit_command(logdir: str | Path, *, port: int, host: str) -> list[str]:
    """The ``python -m streamlit run`` command line serving ``logdir``."""
    return [sys.executable, "-m", "streamlit", "run", str(app_script()), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--global.disableWidgetStateDuplicationWarning", "true", "--", "--logdir", str(Path(logdir).resolve())]


def _check_port(host: str, port: int) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"port is {port!r}; expected an integer 1–65535 (0: a free one)")
    with socket.socket() as s:
        # As the server itself binds (tornado sets SO_REUSEADDR): a port a stopped server left in
        # TIME_WAIT is free again at once, while one with a live listener is still refused.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except socket.gaierror as e:
            raise ConfigError(f"host {host!r} is not an address of this machine ({e.strerror})") from e
        except OSError as e:
            raise ConfigError(f"port {port} on {host} is in use ({e.strerror}); choose another (0: a free one)") from e
        return s.getsockname()[1]


class Dashboard:
    """A running dashboard server: ``url``, :meth:`stop` (also at exit and as a context manager)."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log
        atexit.register(self.stop)

    def __repr__(self) -> str:
        return f"Dashboard({self.url}{'' if self.running else ', stopped'})"

    def __str__(self) -> str:
        return self.url

    def _repr_html_(self) -> str:  # a link in a notebook
        return f'<a href="{self.url}" target="_blank">{self.url}</a>' + ("" if self.running else " (stopped)")

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (idempotent)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        atexit.unregister(self.stop)

    def __enter__(self) -> "Dashboard":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_dashboard(logdir: str | Path, *, port: int = 8501, host: str = "127.0.0.1", timeout: float = 90.0,
                    log: Path | None = None) -> Dashboard:
    """Start the server and return once ``/_stcore/health`` answers (XaiError naming the log
    when it exits or does not answer within ``timeout`` s)."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise ConfigError(f"logdir {str(logdir)!r} is not a directory; expected a folder of runs")
    port = _check_port(host, port)
    log = log or Path(tempfile.mkstemp(prefix="xaiboard-dashboard-", suffix=".log")[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(streamlit_command(logdir, port=port, host=host), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(Path(tempfile.gettempdir())))
    shown = f"[{host}]" if ":" in host else host
    dash = Dashboard(proc, f"http://{shown}:{port}", log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{dash.url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return dash
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            dash.stop()
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise XaiError(f"the dashboard server did not start on {dash.url} "
                           f"({'it exited' if proc.returncode is not None else f'no answer in {timeout:g} s'}); "
                           f"log {log}: {tail[-300:]}")
        time.sleep(0.3)


def serve_forever(logdir: str | Path, *, port: int = 8501, host: str = "127.0.0.1") -> int:
    """``xai-core serve``: become the Streamlit server (``exec``), so that signals (Ctrl-C, a
    service manager's SIGTERM) reach it directly and nothing is left running behind."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise ConfigError(f"--logdir {str(logdir)!r} is not a directory; expected a folder of runs")
    port = _check_port(host, port)
    cmd = streamlit_command(logdir, port=port, host=host)
    print(f"xaiboard dashboard for {logdir.resolve()} on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    os.chdir(tempfile.gettempdir())  # no .streamlit/ of the current directory: the flags above decide
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return
