"""What the pages say about an explainer besides its maps and scores: the layer (or attention)
it resolved on the model, for the legend, and the axiom warnings of ``xai_core/axioms.py``, for
the Runs page, the comprehensive assessment and its ranking. Pure logic, no Streamlit."""

from __future__ import annotations

import pandas as pd

from ..axioms import AXIOMS, run_warnings
from ..inspect import resolved_text
from .tables import RunTables

WARNING_MARK = "⚠"


def legend_note(meta: dict) -> str:
    """"layer blocks.1 (1 + 4×4 tokens)" for a CAM on a ViT; "" when the run recorded nothing."""
    return resolved_text(meta.get("resolved") if isinstance(meta, dict) else None)


def _details_frame(t: RunTables) -> pd.DataFrame:
    rows = [(e, k, v) for (_pos, _label, e), d in t.details().items() for k, v in d.items() if k in AXIOMS]
    return pd.DataFrame(rows, columns=["explainer", "key", "value"])


def axiom_warnings(t: RunTables) -> dict[str, list[str]]:
    """{explainer: warning lines}: from the manifest's ``diagnostics`` once the run is complete,
    else measured on the maps written so far."""
    details = None if isinstance(t.manifest.get("diagnostics"), dict) else _details_frame(t)
    return run_warnings(t.manifest, details)


def marked(names, warnings: dict[str, list[str]]) -> dict[str, str]:
    """{explainer: its name, with the warning mark when it breaks its axiom}: ranking labels."""
    return {n: f"{n} {WARNING_MARK}" if warnings.get(n) else n for n in names}


def axiom_column(warnings: dict[str, list[str]], names) -> dict[str, str]:
    """{explainer: "⚠ completeness 100 %" | "ok"}: the short form of the assessment table."""
    out = {}
    for n in names:
        lines = warnings.get(n)
        out[n] = " · ".join(f"{WARNING_MARK} {ln.split(': ', 1)[1].split(' (')[0]}" for ln in lines) if lines else "ok"
    return out
