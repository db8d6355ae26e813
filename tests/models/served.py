"""Helpers shared by the served-model tests and their KServe fixture (``conftest.py``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

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
