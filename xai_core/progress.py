"""What a run tells the user while it works, and where its time went.

Every phase that takes time shows a bar or a line on stderr: setup (what was loaded, the
threads), the fast-path probe (a line when it starts, its decision and time when it ends), the
parts (the ``explaining`` bar), the sanity check (a bar over explainers × images) and the
final verification (a line, then its time). The run ends with one line that says where the
time went (:func:`time_summary`), made from the manifest's ``timing`` so that the printed
figures are the recorded ones. Nothing is printed when progress is off (``--quiet``).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from tqdm import tqdm

#: Main-thread phases of a run in the order the summary line lists them (manifest
#: ``timing.phases_s``): their seconds add up to the run's wall time.
PHASES = ("setup", "reading", "explain", "metrics", "analyses", "other", "writing", "waiting", "parts", "sanity",
          "finishing")


class RunProgress:
    """Bars and lines for the phases of one run (all of it off when ``enabled`` is False)."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()

    def line(self, text: str) -> None:
        if self.enabled:
            tqdm.write(text, file=self.stream)  # above a bar, if one is shown

    def bar(self, **kw) -> tqdm:
        return tqdm(disable=not self.enabled, file=self.stream, dynamic_ncols=True, **kw)

    @contextmanager
    def timed_line(self, start: str, done: str = "{s}"):
        """A line when the block starts and one with its time when it ends; yields a dict
        whose ``"done"`` entry, when set by the block, replaces ``done`` (``{s}``: the time)."""
        self.line(start)
        t0, out = time.perf_counter(), {}
        yield out
        self.line(out.get("done", done).replace("{s}", format_seconds(time.perf_counter() - t0)))

    def sanity_bar(self, explainers: list[str], n_images: int):
        """(bar, callback(explainer index, steps done, steps total)) for the sanity check:
        explainers × images, each explainer's share filled as its randomisation steps end."""
        bar = self.bar(total=len(explainers) * n_images, unit="img", desc="sanity check")
        current = [None]

        def step(i: int, done: int, total: int) -> None:
            if current[0] != i:  # shown at once: which explainer the time goes to
                current[0] = i
                bar.set_postfix_str(explainers[i])
            bar.update(i * n_images + round(n_images * done / max(total, 1)) - bar.n)

        return bar, step


def format_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def time_summary(timing: dict, *, finishing: float | None = None) -> str:
    """``done in 1 min 05 s: setup 4.1 s (6 %), explain 41 s (63 %), …`` from a manifest
    ``timing`` (``phases_s``, ``background_s``); ``finishing`` adds the closing step, which
    runs after the manifest's timing is written."""
    phases = dict(timing.get("phases_s") or {})
    if finishing is not None:
        phases["finishing"] = finishing
    wall = sum(phases.values())
    items = [f"{name} {format_seconds(phases[name])} ({100 * phases[name] / wall:.0f} %)" if wall > 0 else name
             for name in PHASES if phases.get(name, 0) >= 0.05]
    decide = (timing.get("setup_s") or {}).get("fast_forward", 0.0)  # of setup: the fast-path decision
    if decide >= 0.05 and items and items[0].startswith("setup "):
        items[0] = items[0][:-1] + f", of it the fast-forward decision {format_seconds(decide)})"
    text = f"done in {format_seconds(wall)}: " + ", ".join(items) if items else f"done in {format_seconds(wall)}"
    if timing.get("workers"):
        work = {k: v for k, v in (timing.get("workers_s") or {}).items() if v >= 0.05}
        text += f"; on {timing['workers']} worker(s)" + (
            ", their compute time summed: " + ", ".join(f"{k} {format_seconds(v)}" for k, v in work.items())
            if work else "")
    bg = {k: v for k, v in (timing.get("background_s") or {}).items() if v >= 0.05}
    if bg:
        text += "; " + " and ".join(f"{k} {format_seconds(v)}" for k, v in bg.items()) + " ran beside the model"
    return text
