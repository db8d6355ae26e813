"""The dataset section of the run configuration."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, DatasetError
from .base import RESIZE_POLICIES
from .classes import resolve_classes
from .imagefolder import ImageFolderDataset
from .manifest import ManifestDataset

KINDS = ("manifest", "imagefolder", "memory")

@dataclass(frozen=True)
class DatasetSpec:
    """kind: manifest | imagefolder | memory (images handed over in Python: :mod:`.memory`;
    not readable from a configuration); path: the manifest file or image folder; classes: a list
    of names, a .json/.txt file, ``imagenet`` (bundled), or None (the dataset's own: a
    ``classes.json`` beside the manifest / in the folder, else sorted labels / sub-folders);
    resize: how images reach the model's input size (see ``data.base.RESIZE_POLICIES``)."""

    kind: str = "manifest"
    path: str = ""
    split: str | None = None
    limit: int | None = None
    classes: tuple[str, ...] | str | None = None
    resize: str = "stretch"

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"dataset.kind is {self.kind!r}; expected one of {KINDS}")
        if not self.path and self.kind != "memory":
            raise ConfigError("dataset.path is empty; expected a manifest file or an image folder")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"dataset.limit is {self.limit}; expected a positive integer")
        if self.resize not in RESIZE_POLICIES:
            raise ConfigError(f"dataset.resize is {self.resize!r}; expected one of {RESIZE_POLICIES}")
        resolve_classes(self.classes)


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
