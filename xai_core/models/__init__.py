"""Model adapters: load a user's classifier and wrap it so that every explainer and metric
works in one space: (N, 3, H, W) float32 pixel values in [0, 1] at the declared input size.

The names below are imported on first use (module ``__getattr__``), so that the torch-free
configuration (:mod:`.spec`) is importable without torch."""

from importlib import import_module

_WHERE = {"ClassifierHandle": "handle", "PixelSpaceModel": "handle", "ModelSpec": "spec", "load_model": "loading"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
