"""The dataset section of the run configuration (torch-free: checked before anything heavy
is imported; the adapters are imported by :func:`.open.open_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .classes import resolve_classes

KINDS = ("manifest", "imagefolder", "memory")
#: How a source image is brought to the model's (H, W): ``stretch`` resizes it whole (aspect
#: ratio not kept); ``center_crop`` scales it so that it covers (H, W), aspect kept, and cuts
#: the centre (the usual ImageNet evaluation transform, less its 0.875 border).
RESIZE_POLICIES = ("stretch", "center_crop")

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
