"""The dataset section of the run configuration."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .imagefolder import ImageFolderDataset
from .manifest import ManifestDataset

KINDS = ("manifest", "imagefolder")


@dataclass(frozen=True)
class DatasetSpec:
    kind: str = "manifest"
    path: str = ""
    split: str | None = None
    limit: int | None = None
    classes: tuple[str, ...] | None = None

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"dataset.kind is {self.kind!r}; expected one of {KINDS}")
        if not self.path:
            raise ConfigError("dataset.path is empty; expected a manifest file or an image folder")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"dataset.limit is {self.limit}; expected a positive integer")


def open_dataset(spec: DatasetSpec):
    spec.validate()
    classes = list(spec.classes) if spec.classes else None
    if spec.kind == "manifest":
        return ManifestDataset(spec.path, classes=classes, split=spec.split, limit=spec.limit)
    return ImageFolderDataset(spec.path, classes=classes, limit=spec.limit)
