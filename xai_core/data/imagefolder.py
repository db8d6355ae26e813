"""ImageFolder datasets: ``root/<class name>/<image>``; single-label, no boxes.

Classes come from the config, else ``root/classes.json`` (or ``classes.txt``), else the sorted
sub-folder names. With a given class list (e.g. the 1000 ImageNet names) the folder may hold
only some of the classes; every sub-folder must be one of them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import Sample, read_image
from .classes import read_classes_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageFolderDataset:
    has_objects = False  # an image folder has no boxes or masks (localisation metrics are refused)

    def __init__(self, root: str | Path, *, classes: list[str] | None = None, limit: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"image folder {str(self.root)!r} does not exist or is not a directory")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise DatasetError(f"image folder {str(self.root)!r} has no class sub-folders; expected root/<class>/<image>")
        if classes is None:
            for name in ("classes.json", "classes.txt"):
                if (self.root / name).is_file():
                    classes = read_classes_file(self.root / name, f"{name} in {str(self.root)!r}")
                    break
        self.classes = list(classes) if classes is not None else found
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = [c for c in found if c not in index]
        if unknown:
            raise DatasetError(f"image folder {str(self.root)!r}: sub-folder {unknown[0]!r} is not a known class; expected one of the {len(self.classes)} classes {self.classes[:12]}{'…' if len(self.classes) > 12 else ''}")
        self._items = [
            (p, index[c]) for c in found for p in sorted((self.root / c).iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if limit is not None:
            self._items = self._items[:limit]
        if not self._items:
            raise DatasetError(f"image folder {str(self.root)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Sample:
        path, label = self._items[index]
        rel = str(path.relative_to(self.root))
        return Sample(rel, read_image(path, f"image folder item {rel!r}"), (label,), source=rel)

    def identity(self) -> dict:
        return {"kind": "imagefolder", "path": str(self.root), "n_items": len(self._items)}
