"""Manifest datasets: a JSONL (or CSV) file, one item per line.

JSONL line::

    {"id": "a1", "image": "images/a1.png", "labels": ["cat", "dog"],
     "boxes": [{"label": "cat", "box": [x_min, y_min, x_max, y_max]}],
     "mask": "masks/a1.png", "split": "test"}

Paths are relative to the manifest's folder. ``boxes``, ``mask``, ``id`` and ``split`` are
optional. CSV: columns ``image``, ``labels`` (separated by ``;``), optional ``id``, ``mask``,
``split`` and ``boxes`` (the JSON list above). Classes come from the config, else from
``classes.json`` beside the manifest, else the sorted union of the labels.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from ..errors import DatasetError
from .classes import read_classes_file
from .base import Box, Sample, check_boxes, read_image, read_mask


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"dataset manifest {str(path)!r} does not exist")
    try:
        return _parse_rows(path)
    except UnicodeDecodeError as e:
        raise DatasetError(f"dataset manifest {str(path)!r} is not UTF-8 text (byte {e.start}); "
                           "expected a UTF-8 JSONL or CSV file") from e
    except csv.Error as e:
        raise DatasetError(f"dataset manifest {str(path)!r}: malformed CSV ({e})") from e


def _parse_rows(path: Path) -> list[dict]:
    rows = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                row = dict(row)
                row["_line"] = n
                row["labels"] = [x for x in (row.get("labels") or "").split(";") if x]
                if row.get("boxes"):
                    try:
                        row["boxes"] = json.loads(row["boxes"])
                    except json.JSONDecodeError as e:
                        raise DatasetError(f"{path.name} line {n}: `boxes` is not valid JSON ({e.msg})") from e
                rows.append(row)
        return rows
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path.name} line {n}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise DatasetError(f"{path.name} line {n}: expected a JSON object, got {type(row).__name__}")
            row["_line"] = n
            rows.append(row)
    return rows


class ManifestDataset:
    """Items listed in a manifest file; images are read lazily, one at a time."""

    def __init__(self, path: str | Path, *, classes: list[str] | None = None, split: str | None = None,
                 limit: int | None = None):
        self.path = Path(path)
        self.root = self.path.parent
        rows = _read_rows(self.path)
        if split is not None:
            rows = [r for r in rows if r.get("split") == split]
            if not rows:
                raise DatasetError(f"dataset manifest {str(self.path)!r} has no item with split {split!r}")
        if limit is not None:
            rows = rows[:limit]
        if classes is None:
            cj = self.root / "classes.json"
            if cj.is_file():
                classes = read_classes_file(cj, f"classes.json beside {self.path.name}")
            else:
                classes = sorted({str(lab) for r in rows for lab in r.get("labels", [])})
        self.classes = [str(c) for c in classes]
        self._index = {c: i for i, c in enumerate(self.classes)}
        self._items = [self._parse(r) for r in rows]
        if not self._items:
            raise DatasetError(f"dataset manifest {str(self.path)!r} lists no items; expected at least one")
        seen = {}
        for it in self._items:
            if it["id"] in seen:
                raise DatasetError(f"{it['item']}: id {it['id']!r} is used twice (also {seen[it['id']]}); "
                                   "expected unique item ids")
            seen[it["id"]] = it["item"]
        self.split = split

    def _item_name(self, row: dict) -> str:
        return f"{self.path.name} line {row['_line']} (id {row.get('id') or row.get('image')!r})"

    def _label(self, value, row) -> int:
        try:
            return self._index[str(value)]
        except KeyError:
            raise DatasetError(
                f"{self._item_name(row)}: unknown label {value!r}; expected one of the {len(self.classes)} classes "
                f"{self.classes[:12]}{'…' if len(self.classes) > 12 else ''}"
            ) from None

    def _parse(self, row: dict) -> dict:
        item = self._item_name(row)
        if not row.get("image"):
            raise DatasetError(f"{item}: missing `image` path")
        labels = row.get("labels", [])
        if not isinstance(labels, list):
            raise DatasetError(f"{item}: `labels` is {labels!r}; expected a list of class names")
        boxes = []
        for b in row.get("boxes") or []:
            coords = b.get("box") if isinstance(b, dict) else None
            if not (isinstance(coords, list) and len(coords) == 4 and all(isinstance(v, (int, float)) for v in coords)):
                raise DatasetError(f"{item}: box {b!r} is malformed; expected {{\"label\": name, \"box\": [x_min, y_min, x_max, y_max]}}")
            boxes.append(Box(self._label(b.get("label"), row), *map(float, coords)))
        return {
            "id": str(row.get("id") or Path(row["image"]).stem),
            "image": row["image"],
            "labels": tuple(sorted({self._label(v, row) for v in labels} | {b.label for b in boxes})),
            "boxes": tuple(boxes),
            "mask": row.get("mask") or None,
            "item": item,
        }

    def __len__(self) -> int:
        return len(self._items)

    @property
    def has_objects(self) -> bool:
        """Whether any item has a box or a mask (what localisation metrics score against)."""
        return any(it["boxes"] or it["mask"] for it in self._items)

    def __getitem__(self, index: int) -> Sample:
        it = self._items[index]
        image = read_image(self.root / it["image"], it["item"])
        h, w = image.shape[:2]
        check_boxes(it["boxes"], w, h, it["item"])
        mask = read_mask(self.root / it["mask"], it["item"], (h, w)) if it["mask"] else None
        return Sample(it["id"], image, it["labels"], it["boxes"], mask, source=str(it["image"]))

    def identity(self) -> dict:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        return {"kind": "manifest", "path": str(self.path), "sha256": digest, "split": self.split,
                "n_items": len(self._items)}
