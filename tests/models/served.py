"""Helpers shared by the served-model tests, their KServe fixture (``conftest.py``) and
``bench/remote.py``: a real KServe ModelServer on 127.0.0.1 in its own venv (kserve's pins
conflict with ours; ``make .venv-kserve/.installed`` builds it, ``make test`` does)."""

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
        return (f"{self.base}/v1/models/{name}:predict" if protocol == "v1"
                else f"{self.base}/v2/models/{name}/infer")


class ServerError(RuntimeError):
    pass


@contextmanager
def kserve_server(model_file: Path, log_path: Path, *, ready_s: float = 120.0, port: int | None = None):
    """Start ``kserve_server.py`` serving ``model_file`` (TorchScript) as ``MODEL`` and
    ``MODEL-probs`` on loopback (``port``, or a free one); yield a :class:`Served`; stop it on
    exit (a server already killed is fine)."""
    python = KSERVE_VENV / "bin" / "python"
    if not (KSERVE_VENV / ".installed").is_file():
        raise ServerError(f"the KServe test server's venv {KSERVE_VENV} is missing; build it with "
                          f"`make {KSERVE_VENV.name}/.installed` (`make test` does), or set KSERVE_VENV")
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(python), str(SERVER), "--model-file", str(model_file),
                                 "--port", str(port), "--name", MODEL],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    served = Served(f"http://127.0.0.1:{port}", proc.pid)
    try:
        deadline = time.monotonic() + ready_s  # imports of torch + kserve on a loaded 2-core machine
        while True:
            if proc.poll() is not None:
                raise ServerError(f"the KServe server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{served.base}/v2/models/{MODEL}/ready", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the KServe server was not ready within {ready_s:g} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    (the 503s it answered), ``metadata`` (the V2 model metadata it answers GET with; None:
    relay the GET too)."""

    base: str
    posts: int = 0
    failed: int = 0
    metadata: dict | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def relay_server(target: str, *, fail_every: int = 0, metadata: dict | None = None):
    """A loopback HTTP server in front of ``target`` (the real KServe server) that relays every
    request, except that POST number k (1-based) with k % ``fail_every`` == 0 is answered
    ``503 {"error": "overloaded"}`` (a flaky server the client must retry), and GETs are
    answered with ``metadata`` when it is set. Yields a :class:`Relay`."""
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
