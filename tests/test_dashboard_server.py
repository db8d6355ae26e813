"""`xai-core serve` and `xai_core.serve`: the packaged dashboard found without the repository's
working directory (an editable install, and a built wheel installed elsewhere)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

import xai_core
from xai_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc=None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            pass
        assert proc is None or proc.poll() is None, "the server exited"
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def test_cli_serve_from_another_directory(tmp_path):
    logdir = tmp_path / "runs"
    logdir.mkdir()
    port = free_port()
    cli = Path(sys.executable).with_name("xai-core")
    proc = subprocess.Popen([str(cli), "serve", "--logdir", str(logdir), "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_health(f"http://127.0.0.1:{port}", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()  # the CLI became the server (exec): the signal stops it, nothing is left behind
        proc.wait(timeout=15)
    assert f"on http://127.0.0.1:{port}" in proc.stdout.read()


def test_serve_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        xai_core.serve(tmp_path / "missing")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match=f"port {busy.getsockname()[1]} on 127.0.0.1 is in use"):
            xai_core.serve(tmp_path, port=busy.getsockname()[1])
    out = subprocess.run([sys.executable, "-m", "xai_core", "serve", "--logdir", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "is not a directory" in out.stderr


@pytest.mark.slow
def test_a_built_wheel_carries_the_app(tmp_path):
    """pip builds the wheel with setup.py's hook; installed into a bare target, the package finds
    its own copy of app.py and pages/ (and no repository is on the path)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv*", ".git", "summaries", "data", "build",
                                                             "*.egg-info", "tests", "bench", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("xaiboard-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {p.name for p in (ROOT / "pages").glob("*.py")}
    assert "xai_core/_app/app.py" in names and {f"xai_core/_app/pages/{p}" for p in pages} <= names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)  # what pip install --target does for a pure wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import sys; sys.path = [p for p in sys.path if 'wt' not in p and 'work' not in p]; "
            f"sys.path.insert(0, {str(target)!r}); import xai_core.dashboard_server as d; print(d.app_script())")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.stdout.strip() == str(target / "xai_core" / "_app" / "app.py"), out.stderr


def test_a_port_a_stopped_server_left_in_time_wait_is_free_at_once():
    """``xai-core serve`` right after a stop: the port's TIME_WAIT is no reason to refuse it
    (SO_REUSEADDR, as the server itself binds); a live listener still is."""
    from xai_core.dashboard_server import _check_port

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use"):
        _check_port("127.0.0.1", port)
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn, _ = srv.accept()
    conn.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
    srv.close()
    client.close()
    assert _check_port("127.0.0.1", port) == port
