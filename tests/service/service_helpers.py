"""Starting ``xai-core explainer`` for the tests (see ``conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from served import MODEL
from xai_core.demo import MEAN, STD

SIZE = 64
LIGHT = ["occlusion.window=16", "occlusion.stride=8", "anchors.max_passes=48", "anchors.initial_samples=8",
         "anchors.draw_size=8"]


def service_args(predictor: str, port: int, *extra: str) -> list[str]:
    args = ["explainer", "--model-name", MODEL, "--predictor-host", predictor, "--num-classes", "10",
            "--activation", "sigmoid", "--input-size", str(SIZE), "--mean", ",".join(map(str, MEAN)),
            "--std", ",".join(map(str, STD)), "--explainers", "occlusion,anchors", "--port", str(port)]
    for s in LIGHT:
        args += ["--set", s]
    return args + list(extra)


@contextmanager
def running_service(args: list[str], log: Path, *, ready_s: float = 90.0):
    """``xai-core ARGS`` as a subprocess; yields its base URL once it answers; stops it (SIGTERM,
    as a service manager would) on exit."""
    port = args[args.index("--port") + 1]
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "xai_core", *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            assert proc.poll() is None, f"the service exited: {log.read_text()[-2000:]}"
            try:
                if requests.get(f"{base}/v2/health/live", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the service did not start: {log.read_text()[-2000:]}"
            time.sleep(0.25)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
