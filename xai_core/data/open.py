"""Opening the dataset a :class:`~.spec.DatasetSpec` names (the adapters import torch and PIL;
the specification itself stays torch-free)."""

from __future__ import annotations

from ..errors import DatasetError
from .classes import resolve_classes
from .imagefolder import ImageFolderDataset
from .manifest import ManifestDataset
from .spec import DatasetSpec


def open_dataset(spec: DatasetSpec):
    spec.validate()
    classes = resolve_classes(spec.classes)
    if spec.kind == "memory":
        raise DatasetError("dataset.kind memory: the images were handed to xai_core.explain (or a service) in memory, "
                           "so a configuration cannot read them again; call xai_core.explain again with the same "
                           "images (it resumes the run)")
    if spec.kind == "manifest":
        return ManifestDataset(spec.path, classes=classes, split=spec.split, limit=spec.limit)
    return ImageFolderDataset(spec.path, classes=classes, limit=spec.limit)
