"""Output helpers of the benchmark scripts, torch-free so that ``dashboard.py`` can use them
without loading torch into the memory it measures (``_common.py`` adds the torch-side ones).

Every script prints ``== title``, the command that reproduces it, the machine with its load
average, then ``name: value`` lines with the goal where an issue sets one.
"""

from __future__ import annotations

import os
from pathlib import Path


def env_int(name: str, default: int) -> int:
    """A size knob, overridable from the environment (e.g. ``BENCH_IMAGES=64 make bench``)."""
    return int(os.environ.get(name, default))


def figure(name: str, value, unit: str = "", goal: str = "") -> None:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    line = f"  {name}: {text}{' ' + unit if unit else ''}"
    if goal:
        line += f"   (goal {goal})"
    print(line, flush=True)


def load_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def header(title: str, command: str, machine: str | None = None) -> None:
    print(f"== {title}", flush=True)
    print(f"   reproduce: {command}", flush=True)
    print(f"   {machine or load_line()}", flush=True)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
