"""The README's table of which explainers run on which kind of model agrees with the registry
metadata that the runner enforces (needs_gradients, needs_python_forward), and its architecture
columns with what each explainer really does on the five test architectures: refused up front
(✗) or run (✓; what a ✓ must satisfy is tests/explainers/test_architectures.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path


from xai_core.explainers import EXPLAINERS

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = ("| explainer | PyTorch factory | TorchScript | ONNX | served (KServe, MLServer, Seldon) | CNN (ReLU6) | ViT | "
          "ViT (hand-written) | Swin-like | ConvNeXt-like |")
ARCH_COLUMNS = {"CNN (ReLU6)": "cnn", "ViT": "vit", "ViT (hand-written)": "hand_vit", "Swin-like": "swin",
                "ConvNeXt-like": "convnext"}


def table() -> tuple[list[str], dict[str, tuple[bool, ...]]]:
    text = README.read_text()
    lines = text[text.index(HEADER):].splitlines()
    columns = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert all(c in ("✓", "✗") for c in cells[1:]), line
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = tuple(c == "✓" for c in cells[1:])
    return columns, rows


def test_model_kind_table_matches_the_registry():
    columns, rows = table()
    assert set(rows) == {c.name for c in EXPLAINERS}
    for c in EXPLAINERS:
        forward_only = not (c.needs_gradients or c.needs_python_forward)
        assert rows[c.name][:4] == (True, not c.needs_python_forward, forward_only, forward_only), c.name


def test_architecture_columns_match_what_the_explainers_do():
    sys.path.insert(0, str(Path(__file__).parent / "explainers"))
    from archs import ARCHITECTURES, SIDE
    from handles import make_handle
    from test_architectures import refusal

    columns, rows = table()
    models = {a: make_handle(f(), size=SIDE, classes=10) for a, f in ARCHITECTURES.items()}
    wrong = []
    for c in EXPLAINERS:
        for col, arch in ARCH_COLUMNS.items():
            runs = refusal(c, models[arch]) is None
            if rows[c.name][columns.index(col)] != runs:
                wrong.append(f"{c.name} on {arch}: README says {'✓' if not runs else '✗'}, it {'runs' if runs else 'is refused'}")
    assert not wrong, wrong


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
