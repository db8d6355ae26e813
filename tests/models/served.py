"""Helpers shared by the served-model tests, their fixtures (``tests/conftest.py``) and
``bench/remote.py``: real model servers on 127.0.0.1, each in its own venv (their pins conflict
with ours; ``make test`` builds them): a KServe ModelServer (``.venv-kserve``), a Seldon Core
microservice (``.venv-seldon``) and MLServer (``.venv-mlserver``)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
KSERVE_VENV = Path(os.environ.get("KSERVE_VENV") or ROOT / ".venv-kserve")
SELDON_VENV = Path(os.environ.get("SELDON_VENV") or ROOT / ".venv-seldon")
MLSERVER_VENV = Path(os.environ.get("MLSERVER_VENV") or ROOT / ".venv-mlserver")
SERVER = Path(__file__).with_name("kserve_server.py")
MODEL = "democnn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    base: str
    pid: int

    def url(self, protocol: str, name: str = MODEL) -> str:
        if protocol == "seldon":
            return f"{self.base}/api/v1.0/predictions"
        return (f"{self.base}/v1/models/{name}:predict" if protocol == "v1"
                else f"{self.base}/v2/models/{name}/infer")


class ServerError(RuntimeError):
    pass


@contextmanager
def model_server(what: str, venv: Path, script: str, args: list[str], ready_path: str, log_path: Path, *,
                 ready_s: float = 120.0, port: int | None = None):
    """Start ``script`` (beside this file) with ``venv``'s Python on a loopback port (``port``, or a
    free one; given as ``--port``); yield a :class:`Served` once ``GET ready_path`` answers; stop it
    on exit (a server already killed is fine)."""
    python = venv / "bin" / "python"
    if not (venv / ".installed").is_file():
        raise ServerError(f"the {what} test server's venv {venv} is missing; build it with "
                          f"`make {venv.name}/.installed` (`make test` does)")
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(python), str(Path(__file__).with_name(script)), *args, "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(log_path.parent))
    served = Served(f"http://127.0.0.1:{port}", proc.pid)
    try:
        deadline = time.monotonic() + ready_s  # imports of torch + the server on a loaded 2-core machine
        while True:
            if proc.poll() is not None:
                raise ServerError(f"the {what} server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{served.base}{ready_path}", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the {what} server was not ready within {ready_s:g} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield served
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (as a service manager would), then SIGKILL after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kserve_server(model_file: Path, log_path: Path, *, ready_s: float = 120.0, port: int | None = None):
    """``kserve_server.py`` serving ``model_file`` (TorchScript) as ``MODEL`` and ``MODEL-probs``
    (on ``port``, or a free one)."""
    return model_server("KServe", KSERVE_VENV, "kserve_server.py", ["--model-file", str(model_file), "--name", MODEL],
                        f"/v2/models/{MODEL}/ready", log_path, ready_s=ready_s, port=port)


def seldon_server(model_file: Path, log_path: Path, *, ready_s: float = 120.0):
    """``seldon_server.py``: a Seldon Core microservice; its endpoint is ``/api/v1.0/predictions``."""
    return model_server("Seldon", SELDON_VENV, "seldon_server.py", ["--model-file", str(model_file)],
                        "/health/ping", log_path, ready_s=ready_s)


def mlserver_server(model_file: Path, log_path: Path, *, ready_s: float = 120.0):
    """``mlserver_server.py``: MLServer serving ``MODEL`` over V2 (``/v2/models/MODEL/infer``)."""
    return model_server("MLServer", MLSERVER_VENV, "mlserver_server.py", ["--model-file", str(model_file),
                                                                         "--name", MODEL],
                        f"/v2/models/{MODEL}/ready", log_path, ready_s=ready_s)


def trace_demo_cnn(path: Path) -> Path:
    """The demo CNN traced to TorchScript (normalised (N, 3, 64, 64) → logits), saved to ``path``."""
    import warnings

    import torch

    from xai_core.demo.model import load_demo_model

    with warnings.catch_warnings():  # TorchScript is deprecated, and still what users ship
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(load_demo_model(), torch.zeros(1, 3, 64, 64)).save(str(path))
    return path


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler with ``_reply`` (JSON by default), for the loopback test servers."""

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Relay:
    """What a :func:`relay_server` did and answers: ``posts`` relayed or failed, ``failed``
    (the 503s it answered), ``broken`` (the answers it cut off halfway), ``metadata`` (the V2
    model metadata it answers GET with; None: relay the GET too)."""

    base: str
    posts: int = 0
    failed: int = 0
    broken: int = 0
    metadata: dict | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def relay_server(target: str, *, fail_every: int = 0, break_every: int = 0, metadata: dict | None = None):
    """A loopback HTTP server in front of ``target`` (the real KServe server) that relays every
    request, except that POST number k (1-based) with k % ``fail_every`` == 0 is answered
    ``503 {"error": "overloaded"}`` (a flaky server the client must retry), one with
    k % ``break_every`` == 0 gets the first half of the real answer and then a closed connection
    (a server dying while it answers), and GETs are answered with ``metadata`` when it is set.
    Yields a :class:`Relay`."""
    import requests

    state = Relay("")

    class Handler(JsonHandler):
        def do_GET(self):
            if state.metadata is not None:
                import json

                return self._reply(200, json.dumps(state.metadata).encode())
            r = requests.get(target + self.path, timeout=30)
            self._reply(r.status_code, r.content)

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.posts += 1
                fail = bool(fail_every) and state.posts % fail_every == 0
                state.failed += fail
            if fail:
                return self._reply(503, b'{"error": "overloaded"}')
            keep = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "inference-header-content-length")}
            r = requests.post(target + self.path, data=body, headers=keep, timeout=60)
            with state.lock:
                cut = bool(break_every) and state.posts % break_every == 0
                state.broken += cut
            if cut:  # the full length announced, half of it sent, then the connection closed
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content[: len(r.content) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._reply(r.status_code, r.content, {k: v for k, v in r.headers.items()
                                                   if k.lower() in ("content-type", "inference-header-content-length")})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{srv.server_port}"
    state.metadata = metadata
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        srv.shutdown()
        srv.server_close()
