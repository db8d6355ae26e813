"""The assessment page's report buttons: the run's report (xai_core.report) as HTML, and as
PDF where WeasyPrint is installed, made only when clicked (Streamlit's deferred download) and
kept for the same run version and options."""

from __future__ import annotations

import importlib.util

import streamlit as st

from xai_core.dashboard.render import LRU

_REPORTS = LRU(4)  # a demo report is ~5 MB of text


def report_buttons(run, weights: dict, rows_filter) -> None:
    """Download buttons for the report of ``run`` with the page's weights and tag filter."""
    key = (str(run.info.path), run.stamp, tuple(sorted(weights.items())), rows_filter)
    name = run.info.name.replace("/", "_")

    def make(pdf: bool):
        def build():
            from xai_core.report import ReportOptions, report_html

            opts = ReportOptions(weights=dict(weights), rows_filter=rows_filter)
            html = _REPORTS.get(key + (pdf,), lambda: report_html(run.tables, run.info.name, opts, store=run.store,
                                                                   charts=not pdf))
            if not pdf:
                return html.encode("utf-8")
            from xai_core.report.pdf import html_to_pdf

            return _REPORTS.get(key + ("pdf-bytes",), lambda: html_to_pdf(html))
        return build

    c_html, c_pdf = st.columns([1, 1])
    c_html.download_button("Download report (HTML)", make(False), file_name=f"{name}-report.html", mime="text/html",
                           key="cmp_report", icon=":material/description:", on_click="ignore",
                           help="one self-contained file: identity, tags, classification, this ranking with its "
                                "weights and intervals, per-class scores, sanity verdicts and a gallery of the best "
                                "and worst explained samples; opens offline in any browser")
    if importlib.util.find_spec("weasyprint") is not None:
        c_pdf.download_button("Download report (PDF)", make(True), file_name=f"{name}-report.pdf",
                              mime="application/pdf", key="cmp_report_pdf", icon=":material/picture_as_pdf:",
                              on_click="ignore", help="the same report without the interactive charts")
