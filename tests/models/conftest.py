"""A real KServe ModelServer on 127.0.0.1 serving the demo CNN (TorchScript), for the served-model
tests. It runs in its own venv (``make .venv-kserve/.installed``, which ``make test`` builds):
kserve's pins conflict with ours."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))

from served import KSERVE_VENV, MODEL, ROOT, SERVER, Served, free_port  # noqa: E402


@pytest.fixture(scope="session")
def demo_torchscript(tmp_path_factory) -> Path:
    """The demo CNN traced to TorchScript (normalised (N, 3, 64, 64) → logits)."""
    import warnings

    import torch

    from xai_core.demo.model import load_demo_model

    path = tmp_path_factory.mktemp("served") / "democnn.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated, and still what users ship
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(load_demo_model(), torch.zeros(1, 3, 64, 64)).save(str(path))
    return path


@pytest.fixture(scope="session")
def kserve(demo_torchscript, tmp_path_factory):
    python = KSERVE_VENV / "bin" / "python"
    if not (KSERVE_VENV / ".installed").is_file():
        pytest.fail(f"the KServe test server's venv {KSERVE_VENV} is missing; build it with "
                    f"`make {KSERVE_VENV.name}/.installed` (`make test` does), or set KSERVE_VENV")
    port = free_port()
    log_path = tmp_path_factory.mktemp("kserve") / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(python), str(SERVER), "--model-file", str(demo_torchscript),
                                 "--port", str(port), "--name", MODEL],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    served = Served(f"http://127.0.0.1:{port}", proc.pid)
    try:
        deadline = time.monotonic() + 120  # imports of torch + kserve on a loaded 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the KServe server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{served.base}/v2/models/{MODEL}/ready", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the KServe server was not ready within 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
