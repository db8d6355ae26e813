"""xai_core.explain on real timm / transformers models (tiny random-weight configs): the
papercuts of issue 23 — classes counted through the runner's output rule, ``threads=`` and
``strict=`` accepted, the class-count probe's message naming what the model returned."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent / "explainers"))
from real_archs import CLASSES, SIDE, ARCHS  # noqa: E402  (imports timm through tests/timm_import.py)

import xai_core  # noqa: E402
from xai_core.errors import ConfigError  # noqa: E402

LIGHT = dict(explainers=["gradient"], metrics=["sparseness"], progress=False)


def _images(n=2):
    return torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))


def test_explain_an_hf_model_without_classes_counts_them_through_its_output(tmp_path):
    run = xai_core.explain(ARCHS["hf_vit_sdpa"](), _images(), out=tmp_path / "run", threads=1, strict=True, **LIGHT)
    assert run.classes == [str(i) for i in range(CLASSES)]
    assert run.manifest["model"]["output"] == {"selected": "logits", "rule": run.manifest["model"]["output"]["rule"]}
    assert run.manifest["config"]["threads"] == 1 and run.manifest["config"]["strict"] is True


class TwoHeads(nn.Module):
    def forward(self, x):
        return {"a": x.mean((2, 3)), "b": x.amax((2, 3))}


def test_the_class_count_probe_names_what_the_model_returned(tmp_path):
    with pytest.raises(ConfigError) as e:
        xai_core.explain(TwoHeads(), _images(), out=tmp_path / "run", **LIGHT)
    msg = str(e.value)
    assert "\n" not in msg and "a (1, 3)" in msg and "model.output" in msg, msg
    run = xai_core.explain(TwoHeads(), _images(), out=tmp_path / "run2", output="b", **LIGHT)
    assert run.classes == ["0", "1", "2"]
