"""Tests of the synthetic "digits on textures" demo dataset."""

import json

import numpy as np
from PIL import Image

from xai_core.demo import CLASSES, IMAGE_SIZE
from xai_core.demo.dataset import ensure_demo_dataset, generate_demo_dataset


def _records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generation_is_deterministic(small_dataset, tmp_path):
    again = tmp_path / "again"
    manifest = generate_demo_dataset(again, n_train=20, n_test=20, seed=0)
    assert manifest == again / "manifest.jsonl"
    first, second = _files(small_dataset), _files(again)
    assert len(first) == 2 * 40 + 2  # images + masks + classes.json + manifest.jsonl
    assert first == second


def test_manifest_layout(small_dataset):
    recs = _records(small_dataset)
    assert json.loads((small_dataset / "classes.json").read_text()) == CLASSES
    assert len({r["id"] for r in recs}) == len(recs) == 40
    assert [r["split"] for r in recs].count("test") == 20
    for r in recs:
        assert r["image"] == f"images/{r['id']}.png" and r["mask"] == f"masks/{r['id']}.png"
        assert r["id"].startswith(r["split"] + "-")
        # Labels are a duplicate-free set, in class order, matching the boxes.
        assert r["labels"] == sorted(set(r["labels"]), key=CLASSES.index)
        assert sorted(b["label"] for b in r["boxes"]) == sorted(r["labels"])
        assert len(r["labels"]) <= 3
    counts = [len(r["labels"]) for r in recs]
    assert 0 in counts and max(counts) >= 2


def test_images_masks_and_boxes(small_dataset):
    for r in _records(small_dataset):
        with Image.open(small_dataset / r["image"]) as im:
            assert im.mode == "RGB" and im.size == (IMAGE_SIZE, IMAGE_SIZE)
        with Image.open(small_dataset / r["mask"]) as im:
            assert im.mode == "L"
            mask = np.asarray(im)
        present = {CLASSES[v - 1] for v in np.unique(mask) if v > 0}
        assert present == set(r["labels"])
        for i, b in enumerate(r["boxes"]):
            x0, y0, x1, y1 = b["box"]
            assert 0 <= x0 < x1 <= IMAGE_SIZE and 0 <= y0 < y1 <= IMAGE_SIZE
            ys, xs = np.nonzero(mask == CLASSES.index(b["label"]) + 1)
            # Every stroke pixel of this label lies inside its box (exclusive max) ...
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            others = [o["box"] for j, o in enumerate(r["boxes"]) if j != i]
            overlapped = any(min(x1, o[2]) > max(x0, o[0]) and min(y1, o[3]) > max(y0, o[1])
                             for o in others)
            if not overlapped:  # ... and the box is tight when no other digit covers it.
                assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [x0, y0, x1, y1]


def test_test_split_independent_of_n_train(small_dataset, tmp_path):
    other = tmp_path / "other"
    generate_demo_dataset(other, n_train=3, n_test=5, seed=0)
    for r in _records(other):
        if r["split"] == "test":
            assert (other / r["image"]).read_bytes() == (small_dataset / r["image"]).read_bytes()


def test_ensure_generates_once(tmp_path):
    out = tmp_path / "demo"
    manifest = ensure_demo_dataset(out, n_train=2, n_test=2)
    assert manifest.is_file() and len(_records(out)) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temp folder left over
    stamp = manifest.stat().st_mtime_ns
    assert ensure_demo_dataset(out, n_train=2, n_test=2) == manifest
    assert manifest.stat().st_mtime_ns == stamp
