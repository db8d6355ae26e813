"""Helpers shared by the benchmark scripts (not a benchmark itself: ``run_all.py`` skips
files starting with ``_``).

Every script prints ``figure: value`` lines, each with its goal where the issue sets one, and
the load average of the machine, because the figures are only as good as the cores were idle.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import _report
import torch
from _report import dir_bytes, env_int, figure, load_line  # noqa: F401  (re-exported to the scripts)
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "data" / "demo"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def demo_config(out: Path, *, limit: int, **over) -> dict:
    """The default demo configuration (``xai-core demo``), on the first ``limit`` test images,
    without the randomisation sanity check: that runs once per run on a fixed handful of images
    (in the driver of a Dask run), so in a benchmark of a few images it would swamp the per-image
    figures. ``bench/runner.py`` times it on its own.

    If the trained demo weights are missing, an untrained DemoCNN of the same shape stands
    in (same cost per pass; the numbers of labels explained, hence of passes, differ).
    """
    from xai_core.demo import WEIGHTS_PATH
    from xai_core.demo.dataset import ensure_demo_dataset
    from xai_core.demo.runner import demo_config_dict

    ensure_demo_dataset(DEMO_DATA)
    cfg = demo_config_dict(DEMO_DATA.resolve(), out, limit=limit)
    cfg["sanity"] = {**cfg["sanity"], "enabled": False}
    if not Path(WEIGHTS_PATH).is_file():
        from xai_core.demo.model import DemoCNN

        stand_in = out.parent / "untrained_demo_cnn.pt"
        torch.manual_seed(0)
        torch.save(DemoCNN().state_dict(), stand_in)
        cfg["model"]["factory_kwargs"] = {"weights_path": str(stand_in)}
        print(f"   note: {WEIGHTS_PATH} missing; an untrained DemoCNN stands in", flush=True)
    cfg.update(over)
    return cfg


def manifest(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text())


class TinyNet(nn.Module):
    """A one-layer stand-in classifier (10 classes, any input size) for the memory benchmark,
    where the pipeline is measured and the network's cost would only add minutes."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.down = nn.AvgPool2d(4)
        self.conv = nn.Conv2d(3, classes, 1)  # the spatial layer Grad-CAM picks
        self.pool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(self.down(x)))).flatten(1) * 4.0 - 1.0


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


def time_per_image(module: nn.Module, batch: int, *, grad: bool, repeats: int = 3,
                   size: int = 64) -> float:
    """Best-of-``repeats`` seconds per image of one pass of ``batch`` images through ``module``:
    forward only without autograd (``grad=False``), or forward + backward to the input, as a
    gradient explainer does (``grad=True``)."""
    x = torch.rand(batch, 3, size, size)
    best = float("inf")
    for r in range(repeats + 1):  # the first call warms up allocator and kernels
        t0 = time.perf_counter()
        if grad:
            xi = x.clone().requires_grad_(True)
            out = module(xi)
            torch.autograd.grad(out[:, 0].sum(), xi)
        else:
            with torch.no_grad():
                module(x)
        if r:
            best = min(best, (time.perf_counter() - t0) / batch)
    return best


def machine() -> str:
    return f"{load_line()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def header(title: str, command: str) -> None:
    _report.header(title, command, machine())
