"""``xai-core report RUN``: one self-contained HTML file to hand on (see :mod:`.html`).

:func:`report_html` builds it from a run directory; the assessment page's download button and
the CLI both call it. The aggregates are the dashboard's own (:mod:`xai_core.dashboard`), so
the report says what the pages say.
"""

from __future__ import annotations

from pathlib import Path

from ..dashboard.tables import RunTables
from .content import ReportOptions

__all__ = ["ReportOptions", "report_html", "write_report"]


def report_html(tables: RunTables, run_name: str, options: ReportOptions = ReportOptions(), *,
                store=None, charts: bool = True) -> str:
    """The report of an already loaded run (``store``: its MapStore; opened when None)."""
    from ..dashboard import assessment as A
    from ..dashboard.render import MapStore
    from .content import gallery_metric, gather
    from .gallery import build_gallery
    from .html import render_html

    data = gather(tables, run_name, options)
    store = store if store is not None else MapStore(tables.run_dir)
    tags = options.gallery_tags
    galleries = build_gallery(tables, store, gallery_metric(tables, options.metric), options.per_explainer,
                              A.RowFilter(tags, tags))
    steps = None
    if len(tables.steps) > 1:  # a run written while a model trained: its scores over the steps
        from ..dashboard.steps import steps_summary

        steps = steps_summary(tables)
    return render_html(data, galleries, charts=charts, steps=steps)


def write_report(run_dir: str | Path, out: str | Path, options: ReportOptions = ReportOptions(), *,
                 name: str | None = None, pdf: bool = False) -> Path:
    """Read ``run_dir`` and write its report to ``out`` (HTML, or PDF with ``pdf``); returns
    ``out``. ``name``: the run's name in the report (default: the directory as given)."""
    from ..errors import SummaryError

    run_dir = Path(run_dir)
    tables = RunTables.load(run_dir, root=run_dir)
    text = report_html(tables, name or str(run_dir), options, charts=not pdf)
    out = Path(out)
    try:
        if pdf:
            from .pdf import html_to_pdf

            out.write_bytes(html_to_pdf(text))
        else:
            out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise SummaryError(f"report: cannot write {out}: {e.strerror or e}") from e
    return out
