"""Model factories that fail in every way a user's code can (issue 25): one ModelError line
naming the factory, never a traceback."""

from __future__ import annotations

import pytest

from xai_core.errors import ModelError
from xai_core.models.loading import load_network
from xai_core.models.spec import ModelSpec

MODULES = {
    "fx_syntax.py": "def f(:\n",
    "fx_import.py": "raise ValueError('boom at import\\nsecond line')\n",
    "fx_ok.py": ("import sys\nimport torch\n"
                 "def none():\n    return None\n"
                 "def exits():\n    sys.exit(3)\n"
                 "def needs(x):\n    return torch.nn.Identity()\n"
                 "def loop():\n    return loop()\n"
                 "class Plain:\n    pass\n"),
}


@pytest.mark.parametrize("factory, message", [
    ("fx_syntax:f", "importing module 'fx_syntax' raised SyntaxError"),
    ("fx_import:f", "importing module 'fx_import' raised ValueError: boom at import"),
    (":f", "expected 'package.module:function' with an absolute module name"),
    (".fx_ok:none", "expected 'package.module:function' with an absolute module name"),
    ("fx_ok", "expected 'package.module:function'"),
    ("fx_ok:missing", "has no callable 'missing'"),
    ("fx_ok:none", "returned NoneType; expected a torch.nn.Module"),
    ("fx_ok:Plain", "returned Plain; expected a torch.nn.Module"),
    ("fx_ok:exits", "raised SystemExit: 3"),
    ("fx_ok:needs", "raised TypeError"),
    ("fx_ok:loop", "raised RecursionError"),
    ("fx_nowhere.sub:f", "cannot import module 'fx_nowhere.sub'"),
])
def test_a_failing_factory_is_one_line(tmp_path, factory, message):
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    spec = ModelSpec(factory=factory, factory_path=str(tmp_path), input_size=64)
    with pytest.raises(ModelError) as e:
        load_network(spec)
    assert message in str(e.value) and factory in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_a_scalar_input_size_means_a_square():
    """``input_size: 64`` is documented (README, "or one side") as [64, 64]."""
    from xai_core.config import config_from_dict

    assert ModelSpec(factory="x:y", input_size=64).input_size == (64, 64)
    cfg = {"model": {"factory": "x:y", "input_size": 64}, "dataset": {"kind": "manifest", "path": "m.jsonl"},
           "explainers": ["random"], "out": "out"}
    assert config_from_dict(cfg).model.input_size == (64, 64)
    with pytest.raises(ModelError, match="model.input_size is"):
        ModelSpec(factory="x:y", input_size=4).validate()
