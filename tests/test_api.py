"""The Python API (xai_core.explain / open_run / Run): the same runner, numbers and errors as the
CLI, on models and images held in memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import xai_core
from toy import CLASSES, SIZE, colour_net, toy_config
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError, DatasetError, ModelError, SummaryError, XaiError
from xai_core.runner import run
from xai_core.summary.manifest import read_manifest, write_manifest

LIGHT = dict(explainers=["gradient", {"type": "occlusion", "params": {"window": 8, "stride": 4}}, "random"],
             metrics=[{"type": "deletion_auc", "params": {"steps": 6}}, "pointing_game", "sparseness"])


def manifest_items(data: Path):
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    images = [Image.open(data.parent / r["image"]) for r in rows]
    masks = [np.asarray(Image.open(data.parent / r["mask"])) for r in rows]
    boxes = [[(b["label"], b["box"]) for b in r["boxes"]] for r in rows]
    return rows, images, masks, boxes


def call(net, images, out, **kw):
    args = dict(classes=CLASSES, activation="sigmoid", top_k=2, threshold=0.5, batch_size=4, out=out,
                progress=False, **LIGHT)
    args.update(kw)
    return xai_core.explain(net, images, **args)


@pytest.fixture
def toy_run(toy_data, tmp_path):
    rows, images, masks, boxes = manifest_items(toy_data)
    r = call(colour_net(), images, tmp_path / "nb", labels=[r["labels"] for r in rows], masks=masks, boxes=boxes,
             ids=[r["id"] for r in rows])
    return r, rows


def test_in_memory_explain_equals_the_cli_run_on_the_same_images(toy_data, tmp_path, toy_run):
    r, rows = toy_run
    cli = tmp_path / "cli"
    run(config_from_dict(toy_config(toy_data, cli, labels={"threshold": 0.5, "top_k": 2}, **LIGHT)), cli,
        progress=False)
    ref = xai_core.open_run(cli)
    assert r.status == "complete" and r.manifest["dataset"]["kind"] == "memory"
    assert r.manifest["model"]["module"].endswith("ColourNet") and len(r.manifest["model"]["module_sha256"]) == 16
    key = ["sample_id", "label", "explainer", "metric"]
    a = r.scores.sort_values(key).reset_index(drop=True)
    b = ref.scores.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="sample_index"), b.drop(columns="sample_index"))
    pd.testing.assert_frame_equal(r.labels, ref.labels)
    for _, row in r.labels.iterrows():
        for e in r.explainers:
            np.testing.assert_array_equal(r.map(row.sample_id, row.label, e), ref.map(row.sample_id, row.label, e))
    # the same ranking the dashboard computes from either run
    pd.testing.assert_frame_equal(r.ranking(), ref.ranking())


def test_frames_maps_ranking_and_figure(toy_run):
    r, rows = toy_run
    s = r.samples
    assert list(s["sample_id"]) == [row["id"] for row in rows]
    assert [sorted(g) for g in s["ground_truth"]] == [sorted(row["labels"]) for row in rows]
    assert all(len(p) == len(CLASSES) for p in s["probs"])
    lab = r.labels
    assert set(lab["tag"]) <= {"TP", "FP", "FN", "TN"} and set(lab["class"]) <= set(CLASSES)
    sc = r.scores
    assert set(sc["explainer"]) == {"gradient", "occlusion", "random"}
    assert len(sc) == len(lab) * 3 * 3  # every label × explainer × metric (all label-specific)
    sid = next(row["id"] for row in rows if row["labels"])
    m = r.map(sid, rows[[x["id"] for x in rows].index(sid)]["labels"][0], "gradient")
    assert m.shape == (SIZE, SIZE) and m.dtype == np.float32 and m.max() > 0
    rank = r.ranking()
    assert list(rank["rank"]) == sorted(rank["rank"]) and set(rank["explainer"]) == set(r.explainers)
    # weights: only pointing game counts → the ranking follows its mean on TP labels
    only = r.ranking({"pointing_game": 1.0, "deletion_auc": 0.0, "sparseness": 0.0})
    np.testing.assert_allclose(only["comprehensive"], only["pointing_game mean"])
    with pytest.raises(XaiError, match="not a scored metric"):
        r.ranking({"iosr": 1.0})
    fig = r.show(sid)
    assert len(fig.axes) == 1 + len(r.explainers)
    with pytest.raises(XaiError, match="no sample 'nope'"):
        r.map("nope")
    explained = set(r.labels[r.labels.sample_id == sid]["class"])
    missing = next((c for c in CLASSES if c not in explained), None)
    if missing is not None:
        with pytest.raises(XaiError, match="has no map for label"):
            r.map(sid, missing, "gradient")


def test_every_image_kind_gives_the_same_maps(toy_data, tmp_path):
    rows, images, _, _ = manifest_items(toy_data)
    images, labels = images[:4], [r["labels"] for r in rows[:4]]
    arrays = [np.asarray(im.convert("RGB")) for im in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return batch[i], labels[i]

    kw = dict(explainers=["gradient"], metrics=["sparseness"])
    runs = [call(colour_net(), src, tmp_path / name, labels=lab, **kw) for name, src, lab in
            (("pil", images, labels), ("np", arrays, labels), ("tensor", batch, labels), ("dataset", Pairs(), None))]
    ref = runs[0]
    for other in runs[1:]:
        pd.testing.assert_frame_equal(other.labels, ref.labels)
        for sid in ref.samples["sample_id"]:
            np.testing.assert_array_equal(other.map(sid), ref.map(sid))
            np.testing.assert_array_equal(other.image(sid), ref.image(sid))


def test_rerun_reuses_resumes_and_refuses_another_call(toy_data, tmp_path):
    rows, images, _, _ = manifest_items(toy_data)
    net, out = colour_net(), tmp_path / "nb"
    kw = dict(labels=[r["labels"] for r in rows], batch_size=2)
    first = call(net, images, out, **kw)
    finished, sha = first.manifest["finished"], first.manifest["model"]["module_sha256"]
    again = call(net, images, out, **kw)  # the same call: the run is returned, nothing recomputed
    assert again.manifest["finished"] == finished
    # an interrupted run (its last part lost) is finished by the same call, to the same numbers
    before = first.scores.sort_values(["sample_id", "label", "explainer", "metric"]).reset_index(drop=True)
    last = max(int(p.stem.split("-")[1]) for p in (out / "tables" / "samples").glob("part-*.parquet"))
    (out / "tables" / "samples" / f"part-{last:06d}.parquet").unlink()
    m = read_manifest(out)
    m["status"] = "interrupted"
    write_manifest(out, m)  # sealed again, as the runner writes it
    resumed = call(net, images, out, **kw)
    assert resumed.status == "complete"
    pd.testing.assert_frame_equal(
        resumed.scores.sort_values(["sample_id", "label", "explainer", "metric"]).reset_index(drop=True), before)
    with pytest.raises(ConfigError, match="images differ"):
        call(net, images[:-1], out, labels=kw["labels"][:-1], batch_size=2)
    with pytest.raises(ConfigError, match="explainers differ"):
        call(net, images, out, **{**kw, "explainers": ["gradient"]})
    changed = colour_net()
    with torch.no_grad():
        changed.features[0].bias.fill_(-0.2)
    with pytest.raises(ConfigError, match="model weights differ"):
        call(changed, images, out, **kw)
    replaced = call(changed, images, out, overwrite=True, **kw)
    assert replaced.manifest["model"]["module_sha256"] != sha
    # the CLI cannot resume it: its images were in memory
    assert subprocess.run([sys.executable, "-m", "xai_core", "run", "--resume", str(out)], capture_output=True,
                          text=True).stderr.count("in memory") == 1


def test_the_users_module_is_given_back_as_it_was(toy_data, tmp_path):
    rows, images, _, _ = manifest_items(toy_data)
    net = colour_net().train()
    net.features[0].weight.requires_grad_(True)
    call(net, images[:2], tmp_path / "nb", explainers=["gradient"], metrics=[])
    assert net.training and all(p.requires_grad for p in net.parameters())


class TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = colour_net()

    def forward(self, x):
        return self.net(x), self.net(x)


def test_wrong_inputs_get_the_clis_one_line_errors(toy_data, tmp_path):
    rows, images, _, _ = manifest_items(toy_data)
    out = tmp_path / "bad"
    cases = [
        (dict(classes=CLASSES[:2]), ModelError, r"model outputs shape \(1, 3\); expected \(N, 2\) logits"),
        (dict(images=images[:2] + [images[2].resize((40, 24))]), ConfigError, r"images\[2\] is 24×40 pixels but "),
        (dict(images=torch.rand(2, 3, SIZE, SIZE) * 3), DatasetError, r"images\[0\]: float pixels in \[.*\]; expected \[0, 1\]"),
        (dict(labels=[["emu"]] + [[]] * 11), DatasetError, r"images\[0\]: unknown label 'emu'"),
        (dict(whatever=1), ConfigError, "unknown option 'whatever'"),
        (dict(explainers=["nope"]), ConfigError, "nope"),
        (dict(batch_size=0), ConfigError, "batch_size 0"),
        (dict(images="cat.png"), DatasetError, "images is str"),
    ]
    for over, err, pattern in cases:
        args = {"images": images, **over}
        with pytest.raises(err, match=pattern) as info:
            call(colour_net(), args.pop("images"), out, **args)
        assert "\n" not in str(info.value) and info.value.__cause__ is None  # one line, no chained trace
    # A tuple whose first element is (N, K): the class-count probe applies the runner's output
    # rule (it used to refuse what the runner then took), and the choice is recorded.
    run = xai_core.explain(TwoHeads(), images, out=tmp_path / "two_heads", progress=False, explainers=["random"],
                           metrics=["sparseness"])
    assert run.classes == [str(i) for i in range(len(CLASSES))] and run.manifest["model"]["output"]["selected"] == 0
    with pytest.raises(ConfigError, match="not a file"):
        xai_core.explain(str(tmp_path / "missing.pt"), images, classes=CLASSES, out=out)
    with pytest.raises(SummaryError, match="not a run directory"):
        xai_core.open_run(tmp_path)


def test_torchscript_path_equals_the_module(toy_data, tmp_path):
    rows, images, _, _ = manifest_items(toy_data)
    path = tmp_path / "net.pt"
    torch.jit.trace(colour_net(), torch.zeros(1, 3, SIZE, SIZE)).save(str(path))
    kw = dict(explainers=["gradient", {"type": "occlusion", "params": {"window": 8, "stride": 4}}],
              metrics=["sparseness"], labels=[[CLASSES.index(c) for c in r["labels"]] for r in rows])
    a = call(colour_net(), images, tmp_path / "module", **kw)
    b = call(str(path), images, tmp_path / "script", **{**kw, "classes": None})  # classes from a probe pass
    assert b.classes == ["0", "1", "2"] and b.manifest["model"]["torchscript_sha256"]
    for sid in a.samples["sample_id"]:
        for e in a.explainers:
            np.testing.assert_allclose(b.map(sid, explainer=e), a.map(sid, explainer=e), atol=1e-6)


def test_import_stays_light():
    code = ("import sys, xai_core; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; "
            "f = xai_core.explain; assert callable(f) and 'torch' not in sys.modules; "
            "print(sorted(n for n in ('explain', 'open_run', 'serve', 'Run') if n in dir(xai_core)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['Run', 'explain', 'open_run', 'serve']"


def test_ranking_shows_the_numbers_of_the_comprehensive_page(toy_run, monkeypatch):
    """What the dashboard's Comprehensive assessment page displays (AppTest) is Run.ranking()."""
    from streamlit.testing.v1 import AppTest

    r, _ = toy_run
    monkeypatch.setenv("XAI_LOGDIR", str(r.path.parent))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
    at.query_params["run"] = r.path.name
    at.run()
    at.switch_page("pages/comprehensive.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.table[0].value
    rank = r.ranking()
    assert list(shown["explainer"]) == list(rank["explainer"])
    np.testing.assert_allclose(shown["comprehensive"].astype(float), rank["comprehensive"], atol=5e-4)
