"""``assert_dashboard_opens``: what a user's first look at a run does, without Streamlit —
list the logdir, open the run, select and page its images, render the first page's overlays
and the assessment table. Shared by the end-to-end tests of every model kind."""

from __future__ import annotations

from pathlib import Path


def assert_dashboard_opens(run_dir: str | Path, *, n_samples: int | None = None):
    from xai_core.dashboard import assessment, list_runs, open_run
    from xai_core.dashboard import query as Q
    from xai_core.dashboard.overlay import OverlayStyle

    run_dir = Path(run_dir)
    logdir = run_dir.parent
    runs = list_runs(logdir)
    info = next(r for r in runs if Path(r.path).resolve() == run_dir.resolve())
    assert info.status == "complete", (info.status, getattr(info, "error", None))
    opened = open_run(logdir, run_dir.name, runs)
    t = opened.tables
    if n_samples is not None:
        assert len(t.samples) == n_samples
    sel = Q.select(t, Q.SaliencyFilter(), Q.SortSpec())
    view = Q.page_view(t, sel, 1, 8)
    assert view.rows, "no image to show"
    grid = opened.store.grid(view.rows, {}, t.explainers, OverlayStyle())
    assert not grid.errors, grid.errors
    assert all(grid.tiles[(r.pos, e)] for r in view.rows for e in t.explainers if r.default_label() is not None)
    table = assessment.explainer_metric_table(t, n_boot=50)
    assert len(table), "no scores"
    return opened
