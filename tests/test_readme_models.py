"""The README's table of which explainers run on which kind of model agrees with the registry
metadata that the runner enforces (needs_gradients, needs_python_forward)."""

from __future__ import annotations

import re
from pathlib import Path

from xai_core.explainers import EXPLAINERS

README = Path(__file__).resolve().parent.parent / "README.md"


def test_model_kind_table_matches_the_registry():
    text = README.read_text()
    table = text[text.index("| explainer | PyTorch factory | TorchScript | ONNX | served (KServe, MLServer, Seldon) |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = tuple(c == "✓" for c in cells[1:])
    assert set(rows) == {c.name for c in EXPLAINERS}
    for c in EXPLAINERS:
        forward_only = not c.needs_gradients
        assert rows[c.name] == (True, not c.needs_python_forward, forward_only, forward_only), c.name
