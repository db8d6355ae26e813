"""Dataset adapters. Every adapter yields :class:`Sample` objects with the image at its
source resolution; :func:`prepare` resizes a sample to the model's input size.

The names below are imported on first use (module ``__getattr__``), so that the torch-free
configuration (:mod:`.spec`) is importable without torch."""

from importlib import import_module

_WHERE = {
    "Box": "base", "Dataset": "base", "PreparedBatch": "base", "Sample": "base", "object_mask": "base",
    "prepare_batch": "base", "ImageFolderDataset": "imagefolder", "ManifestDataset": "manifest",
    "DatasetSpec": "spec", "open_dataset": "open",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
