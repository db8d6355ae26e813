import json

import numpy as np
import pytest
from PIL import Image

from xai_core.data import ImageFolderDataset, ManifestDataset, object_mask, prepare_batch
from xai_core.errors import DatasetError


def write(tmp_path, lines, classes=None):
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "img" / "a.png")
    if classes:
        (tmp_path / "classes.json").write_text(json.dumps(classes))
    p = tmp_path / "m.jsonl"
    p.write_text("".join(json.dumps(l) + "\n" for l in lines))
    return p


def test_reads_labels_boxes_and_classes(tmp_path):
    p = write(tmp_path, [{"id": "a", "image": "img/a.png", "labels": ["cat"],
                          "boxes": [{"label": "dog", "box": [1, 2, 10, 12]}]}], classes=["cat", "dog"])
    ds = ManifestDataset(p)
    s = ds[0]
    assert ds.classes == ["cat", "dog"]
    assert s.image.shape == (20, 30, 3) and s.image.dtype == np.uint8
    assert s.labels == (0, 1)  # a boxed object's label is a ground-truth label
    assert s.boxes[0].as_list() == [1, 2, 10, 12]


def test_unknown_label_names_the_line_and_the_label(tmp_path):
    p = write(tmp_path, [{"image": "img/a.png", "labels": ["cat"]}, {"image": "img/a.png", "labels": ["emu"]}],
              classes=["cat"])
    with pytest.raises(DatasetError, match=r"line 2.*unknown label 'emu'"):
        ManifestDataset(p)


def test_missing_image_is_reported_on_load(tmp_path):
    p = write(tmp_path, [{"id": "x", "image": "img/nope.png", "labels": []}], classes=["cat"])
    with pytest.raises(DatasetError, match=r"id 'x'.*does not exist"):
        ManifestDataset(p)[0]


def test_corrupt_image(tmp_path):
    p = write(tmp_path, [{"image": "img/bad.png", "labels": []}], classes=["cat"])
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="corrupt"):
        ManifestDataset(p)[0]


def test_box_outside_image(tmp_path):
    # The image is 30 wide, 20 high: x_max = 31 is outside; x/y are not swapped.
    p = write(tmp_path, [{"image": "img/a.png", "labels": ["cat"], "boxes": [{"label": "cat", "box": [0, 0, 31, 5]}]}],
              classes=["cat"])
    with pytest.raises(DatasetError, match=r"outside the 30x20 image"):
        ManifestDataset(p)[0]
    p = write(tmp_path, [{"image": "img/a.png", "labels": ["cat"], "boxes": [{"label": "cat", "box": [0, 0, 25, 20]}]}],
              classes=["cat"])
    assert ManifestDataset(p)[0].boxes[0].x_max == 25


def test_malformed_json_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"image": "a.png", "labels": []}\n{oops\n')
    with pytest.raises(DatasetError, match="line 2: not valid JSON"):
        ManifestDataset(p)


def test_csv_manifest(tmp_path):
    write(tmp_path, [])
    p = tmp_path / "m.csv"
    p.write_text('image,labels,boxes\nimg/a.png,cat;dog,"[{""label"": ""cat"", ""box"": [0, 0, 5, 5]}]"\n')
    ds = ManifestDataset(p)
    assert ds.classes == ["cat", "dog"] and ds[0].labels == (0, 1)


def test_split_filter(tmp_path):
    p = write(tmp_path, [{"image": "img/a.png", "labels": [], "split": "train"},
                         {"image": "img/a.png", "labels": [], "split": "test", "id": "t"}], classes=["c"])
    assert len(ManifestDataset(p, split="test")) == 1
    with pytest.raises(DatasetError, match="no item with split 'val'"):
        ManifestDataset(p, split="val")


def test_imagefolder(tmp_path):
    for c in ("ant", "bee"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(tmp_path / c / "1.png")
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ["ant", "bee"] and len(ds) == 2 and ds[1].labels == (1,)
    with pytest.raises(DatasetError, match="not a known class"):
        ImageFolderDataset(tmp_path, classes=["ant"])


def test_prepare_scales_boxes_and_masks(toy_data):
    ds = ManifestDataset(toy_data)
    b = prepare_batch(ds, [1], (64, 64))  # toy images are 32x32
    assert b.pixels.shape == (1, 3, 64, 64) and float(b.pixels.max()) <= 1.0
    box = b.boxes[0][0]
    src = ds[1].boxes[0]
    assert box.x_min == 2 * src.x_min and box.y_max == 2 * src.y_max
    m = object_mask(b.boxes[0], b.masks[0], box.label, (64, 64))
    assert m[int(box.y_min) + 1, int(box.x_min) + 1] and m.sum() == pytest.approx((box.x_max - box.x_min) * (box.y_max - box.y_min))


def test_object_mask_from_boxes_uses_x_as_column():
    from xai_core.data import Box

    m = object_mask([Box(0, 2, 5, 6, 7)], None, 0, (10, 10))
    assert m.sum() == 4 * 2
    assert m[5:7, 2:6].all()  # rows y 5..6, columns x 2..5
    assert object_mask([Box(1, 2, 5, 6, 7)], None, 0, (10, 10)) is None
