"""Class lists from files, the bundled ImageNet names, resize policies and grey pixels."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from xai_core.config import load_config
from xai_core.data import Box, ImageFolderDataset, ManifestDataset, prepare_batch
from xai_core.data.classes import read_classes_file, resolve_classes
from xai_core.data.open import open_dataset
from xai_core.data.spec import DatasetSpec
from xai_core.errors import ConfigError, DatasetError


def manifest(tmp_path, labels=("tabby",), size=(20, 40), boxes=()):
    (tmp_path / "img").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / "img" / "a.png")
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"id": "a", "image": "img/a.png", "labels": list(labels), "boxes": list(boxes)}) + "\n")
    return p


def test_classes_file_in_the_config_is_read_not_split(tmp_path):
    # The issue: `classes: classes.json` was split into characters ('c', 'l', 'a', …).
    (tmp_path / "names.json").write_text(json.dumps(["cat", "dog", "tabby"]))
    m = manifest(tmp_path)
    cfg = {"model": {"factory": "toy:colour_net"}, "explainers": ["random"],
           "dataset": {"kind": "manifest", "path": "m.jsonl", "classes": "names.json"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    ds = open_dataset(load_config(tmp_path / "run.yaml").dataset)  # relative to the config file
    assert ds.classes == ["cat", "dog", "tabby"] and ds[0].labels == (2,)
    assert isinstance(ds, ManifestDataset) and m.is_file()


@pytest.mark.parametrize("name,text", [
    ("c.json", json.dumps(["a", "b", "c"])),
    ("c.json", json.dumps({"1": ["n02", "b"], "0": ["n01", "a"], "2": ["n03", "c"]})),  # Keras' class index
    ("c.json", json.dumps({"0": "a", "1": "b", "2": "c"})),
    ("c.txt", "a\nb\n\nc\n"),
])
def test_class_file_formats(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert read_classes_file(tmp_path / name) == ["a", "b", "c"]


@pytest.mark.parametrize("name,text,match", [
    ("c.json", "[\"a\", ", "not valid JSON"),
    ("c.json", json.dumps({"a": 1}), "not class indices"),
    ("c.json", json.dumps({"0": "a", "2": "b"}), "without gaps"),
    ("c.json", json.dumps("abc"), "expected a JSON list"),
    ("c.json", json.dumps(["a", "a"]), "twice"),
    ("c.txt", "\n\n", "lists no class"),
    ("c.csv", "a,b", "expected .json or .txt"),
])
def test_bad_class_files_get_one_line(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        resolve_classes(str(tmp_path / name))
    assert "\n" not in str(e.value)


def test_missing_class_file_and_bad_types(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        DatasetSpec(path="m.jsonl", classes=str(tmp_path / "nope.json")).validate()
    with pytest.raises(ConfigError, match="twice"):
        resolve_classes(("a", "a"))
    with pytest.raises(ConfigError, match="expected a list of names"):
        resolve_classes(3)


def test_bundled_imagenet_names():
    names = resolve_classes("imagenet")
    assert len(names) == 1000 and len(set(names)) == 1000
    # Spot checks of the standard ImageNet-1k order (indices of the usual class-index file).
    assert names[0] == "tench" and names[281] == "tabby" and names[285] == "Egyptian cat"
    assert names[657] == "missile" and names[812] == "space shuttle" and names[967] == "espresso"
    assert names[872] == "tripod" and names[999] == "toilet tissue"
    assert (names[134], names[517]) == ("crane (bird)", "crane (machine)")  # the one duplicate name


def test_imagefolder_with_a_subset_of_a_class_list(tmp_path):
    for c in ("tabby", "espresso"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / c / "x.png")
    ds = ImageFolderDataset(tmp_path, classes=resolve_classes("imagenet"))
    assert len(ds.classes) == 1000 and [ds[i].labels for i in range(2)] == [(967,), (281,)]
    (tmp_path / "classes.txt").write_text("espresso\ntabby\nother\n")  # read when no classes are given
    assert ImageFolderDataset(tmp_path).classes == ["espresso", "tabby", "other"]
    (tmp_path / "emu").mkdir()
    with pytest.raises(DatasetError, match="'emu' is not a known class; expected one of the 1000 classes"):
        ImageFolderDataset(tmp_path, classes=resolve_classes("imagenet"))


def test_resize_policies_transform_boxes_and_masks(tmp_path):
    p = manifest(tmp_path, labels=(), size=(20, 40), boxes=[{"label": "a", "box": [0, 5, 14, 15]},
                                                             {"label": "b", "box": [15, 0, 25, 20]}])
    ds = ManifestDataset(p, classes=["a", "b"])
    src = ds[0].image
    st = prepare_batch(ds, [0], (10, 10), resize="stretch")
    assert st.boxes[0] == (Box(0, 0, 2.5, 3.5, 7.5), Box(1, 3.75, 0, 6.25, 10))
    cc = prepare_batch(ds, [0], (10, 10), resize="center_crop")
    # Scaled by 0.5 to 10×20, centre 10×10 kept (columns 5…15 of the scaled image): the first
    # box is cut to its right part, the second lies inside and moves left by 5.
    assert cc.boxes[0] == (Box(0, 0, 2.5, 2, 7.5), Box(1, 2.5, 0, 7.5, 10))
    ref = np.asarray(Image.fromarray(src).resize((20, 10), Image.BILINEAR))[:, 5:15]
    np.testing.assert_array_equal(cc.display[0], ref)
    # A box entirely outside the crop is dropped.
    p2 = manifest(tmp_path, labels=(), size=(20, 40), boxes=[{"label": "a", "box": [0, 0, 8, 20]}])
    assert prepare_batch(ManifestDataset(p2, classes=["a"]), [0], (10, 10), resize="center_crop").boxes[0] == ()
    with pytest.raises(ConfigError, match="dataset.resize"):
        DatasetSpec(path="m.jsonl", resize="squash").validate()


def test_grey_pixels_for_one_channel_models(tmp_path):
    ds = ManifestDataset(manifest(tmp_path, labels=()), classes=["a"])
    b3 = prepare_batch(ds, [0], (20, 40))
    b1 = prepare_batch(ds, [0], (20, 40), channels=1)
    assert b3.pixels.shape == (1, 3, 20, 40) and b1.pixels.shape == (1, 1, 20, 40)
    luma = np.asarray(Image.fromarray(ds[0].image).convert("L"))
    np.testing.assert_array_equal((b1.pixels[0, 0].numpy() * 255).round().astype(np.uint8), luma)
    # The dashboard shows what the model saw: the grey image as RGB.
    assert b1.display.shape == (1, 20, 40, 3) and (b1.display[0] == luma[:, :, None]).all()
