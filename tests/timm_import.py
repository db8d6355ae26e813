"""Import timm (and torchvision, which timm imports) in the tests, beside torch's CPU build.

The registry's torchvision releases for our torch pin are CUDA builds: their C extension does
not load beside torch CPU, torchvision then runs without its C operators (``_has_ops()`` is
False) — except that ``torchvision/_meta_registrations.py`` still registers a fake kernel for
``torchvision::nms`` and ``torchvision::qnms``, which dies because the operator was never
defined. Defining those two schemas (the extension's own signatures) before the import lets
torchvision import; timm never calls them. Test-only: the product does not import torchvision,
and a user's matching torch + torchvision pair needs none of this. Nothing installed is edited.

    from timm_import import timm

transformers' image classes import torchvision too: import them after this module.
"""

from __future__ import annotations

import warnings

import torch

_SCHEMAS = {"nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}


def _define_missing() -> None:
    missing = [op for op in _SCHEMAS if not hasattr(torch.ops.torchvision, op)]
    if missing:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in missing:
            lib.define(_SCHEMAS[op])
        globals()["_LIB"] = lib  # the definitions live as long as the library object


try:
    import torchvision  # noqa: F401  (a matching pair imports as is)
except RuntimeError:
    _define_missing()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to load")
        import torchvision  # noqa: F401

import timm  # noqa: E402

__all__ = ["timm"]
