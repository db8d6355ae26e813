"""Bad or unusual dataset input: right pixels or one DatasetError line, never a traceback
(issue 11, items 7 and 8)."""

import json

import numpy as np
import pytest
from PIL import Image

from xai_core.data import ImageFolderDataset, ManifestDataset
from xai_core.data.base import read_image
from xai_core.errors import XaiError, DatasetError


def test_16bit_greyscale_png_is_scaled_not_clipped_to_white(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit image
    rgb = read_image(tmp_path / "deep.png", "item")
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.rint(ramp / 257.0).astype(np.uint8))
    assert rgb.min() == 0 and rgb.max() == 255 and 100 < np.median(rgb) < 155


def test_decompression_bomb_is_a_dataset_error(tmp_path, monkeypatch):
    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    # 64 × 64 = 4096 pixels > 2 × 1000: PIL's own bomb check fires (real files: 2 × 89 Mpx).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DatasetError, match="item: image file .*too large to decode safely"):
        read_image(tmp_path / "bomb.png", "item")


def _manifest(tmp_path, rows, name="m.jsonl"):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_non_utf8_manifest_is_one_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"image": "a.png", "labels": ["caf\xe9"]}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        ManifestDataset(path)


@pytest.mark.parametrize("content, message", [
    (b"[not json", "is not valid JSON"),
    (b'{"a": 1}', "keys are not class indices"),
    (b"[]", "lists no class"),
    (b'["cat", "cat"]', "lists 'cat' twice"),
    (b'["caf\xe9"]', "cannot be read as UTF-8"),
])
def test_bad_classes_json(tmp_path, content, message):
    path = _manifest(tmp_path, [{"image": "a.png", "labels": []}])
    (tmp_path / "classes.json").write_bytes(content)
    with pytest.raises(XaiError, match=message):
        ManifestDataset(path)


def test_duplicate_ids_are_refused(tmp_path):
    path = _manifest(tmp_path, [{"id": "x", "image": "a.png", "labels": []},
                                {"id": "y", "image": "a.png", "labels": []},
                                {"id": "x", "image": "a.png", "labels": []}])
    with pytest.raises(DatasetError, match="line 3 .*id 'x' is used twice"):
        ManifestDataset(path, classes=["c"])


def test_empty_datasets_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="lists no items"):
        ManifestDataset(_manifest(tmp_path, []), classes=["c"])
    (tmp_path / "folder" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        ImageFolderDataset(tmp_path / "folder")


def test_16bit_mask_values_above_255_are_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((8, 8), 300, np.uint16)).save(tmp_path / "mask.png")
    path = _manifest(tmp_path, [{"image": "a.png", "labels": [], "mask": "mask.png"}])
    with pytest.raises(DatasetError, match="values up to 300"):
        ManifestDataset(path, classes=["c"])[0]
