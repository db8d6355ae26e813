"""Everything the dashboard pages compute, with no Streamlit in it.

The pages (``pages/*.py``) read widgets, call one function here, and render its result;
the Streamlit caches they use wrap :func:`open_run` (per run version) and the functions of
:mod:`.assessment`. Modules:

* :mod:`.runs` — listing the runs under a logdir and resolving a run name safely;
* :mod:`.tables` — the columnar view of one run (:class:`RunTables`);
* :mod:`.query` — saliency filters, sorting and paging; :mod:`.detail` — the detail of one image;
* :mod:`.overlay` / :mod:`.render` — display of raw maps (heat maps, Vertex-style outlines, clip
  ranges), cached rendering; :mod:`.legend` — the colour bar under a column of maps;
* :mod:`.metric_info` — a run's metrics and the one name of each [0, 1] score;
* :mod:`.assessment` — aggregation of scores (means, bootstrap intervals, weights, per class);
* :mod:`.counterfactual` — the counterfactual page's filters and layer-by-layer composites;
* :mod:`.figures` — the plotly figures;
* :mod:`.steps` — the dashboard over the steps of a run (scores and tags over steps, map changes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .render import MapStore
from .runs import RunInfo, list_runs, parse_logdir, resolve_run, runs_frame
from .tables import RunTables, run_stamp


@dataclass(eq=False)
class OpenRun:
    """A run ready for the pages: its tables and its map store."""

    info: RunInfo
    tables: RunTables
    store: MapStore
    stamp: int = 0     # :func:`run_stamp` when loaded: identifies this version of the run
    load_s: float = 0.0  # seconds the tables took to load (paces the refresh of a running run)


def open_run(logdir: str | Path, name: str, runs: list[RunInfo] | None = None, step: int | None = None) -> OpenRun:
    """Resolve ``name`` under ``logdir`` (never outside it) and load its tables (at ``step``
    for a run of several steps, None: the newest; FORMAT.md "Steps").
    Raises :class:`~xai_core.errors.XaiError` subclasses with a message for the user."""
    info = resolve_run(logdir, name, runs)
    stamp = run_stamp(info.path)
    t0 = time.perf_counter()
    tables = RunTables.load(info.path, root=logdir, step=step)
    return OpenRun(info, tables, MapStore(tables.run_dir), stamp, time.perf_counter() - t0)


_PRELOAD: list = []
_PRELOAD_LOCK = threading.Lock()


def preload() -> threading.Thread:
    """Import in the background, once per process, what a user's click would otherwise wait
    for: plotly (the charts) and torch (the counterfactual composites), several seconds on a
    small machine (issue 12: every interaction under 1 s). Returns the (daemon) thread."""
    with _PRELOAD_LOCK:
        if not _PRELOAD:
            def work():
                import importlib

                for name in ("plotly.graph_objects", "torch", "xai_core.blur", "xai_core.counterfactual"):
                    try:
                        importlib.import_module(name)
                    except Exception:  # noqa: BLE001 - a missing extra only slows the first use
                        pass

            th = threading.Thread(target=work, name="xaiboard-preload", daemon=True)
            th.start()
            _PRELOAD.append(th)
        return _PRELOAD[0]


__all__ = ["preload", "MapStore", "OpenRun", "RunInfo", "RunTables", "list_runs", "open_run", "parse_logdir",
           "resolve_run", "run_stamp", "runs_frame"]
