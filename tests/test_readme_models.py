"""The README's table of which explainers run on which kind of model agrees with the registry
metadata that the runner enforces (needs_gradients, needs_python_forward)."""

from __future__ import annotations

import re
from pathlib import Path

from xai_core.explainers import EXPLAINERS

README = Path(__file__).resolve().parent.parent / "README.md"


def test_model_kind_table_matches_the_registry():
    text = README.read_text()
    table = text[text.index("| explainer | PyTorch factory | TorchScript | ONNX | served (KServe) |"):]
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


def test_the_config_values_the_readme_says_are_refused_are_refused(toy_data, tmp_path):
    """Guarantees, "Bad input gets one line": each `key: value` example is refused with one line
    (the README used to list `input_size: 64`, which is valid)."""
    import yaml

    from toy import toy_config
    from xai_core.config import config_from_dict
    from xai_core.errors import ConfigError

    text = README.read_text()
    bullet = text[text.index("* **Bad input gets one line**"):]
    examples = re.findall(r"`([a-z_]+):\s+([^`]+)`", bullet[:bullet.index(")")])
    assert {k for k, _ in examples} == {"batch_size", "top_k", "input_size"}
    where = {"batch_size": (), "top_k": ("labels",), "input_size": ("model",)}
    for key, value in examples:
        raw = toy_config(toy_data, tmp_path / "run")
        node = raw
        for section in where[key]:
            node = node.setdefault(section, {})
        node[key] = yaml.safe_load(value)
        try:
            config_from_dict(raw)
        except ConfigError as e:
            assert "\n" not in str(e) and key in str(e)
        else:
            raise AssertionError(f"the README says `{key}: {value}` is refused; it is accepted")
