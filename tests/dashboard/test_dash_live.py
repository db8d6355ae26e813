"""The live page's core (xai_core.dashboard.live, live_inputs): uploads checked before anything
runs, the active run's model loaded from its manifest (or an uploaded ONNX file), maps computed
by the runner's engine (equal to xai_core.explain's), "Add to a run" appending parts that hold
the maps the page showed."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import pages_runs
from xai_core.dashboard import RunTables
from xai_core.dashboard import live as L
from xai_core.dashboard import live_inputs as I
from xai_core.demo.model import load_demo_model
from xai_core.summary.reader import read_manifest

REQ = L.LiveRequest((("gradient", ()), ("gradcam", ()), ("occlusion", ())), top_k=2)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return pages_runs.pages_logdir(tmp_path_factory)


@pytest.fixture(scope="module")
def demo_model(logdir):
    return I.model_of_run(read_manifest(logdir / pages_runs.DEMO_A), pages_runs.DEMO_A)


@pytest.fixture(scope="module")
def handle(demo_model):
    return L.load_handle(demo_model)


def _encoded(image, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kw)
    return buf.getvalue()


# ---- uploads -----------------------------------------------------------------------------------
def test_png_and_jpeg_decode_other_files_get_one_line(logdir):
    img = pages_runs.demo_image(logdir)
    assert (I.decode_upload(_encoded(img, "PNG"), "a.png") == img).all()
    assert I.decode_upload(_encoded(img, "JPEG", quality=95), "a.jpg").shape == img.shape
    tiff16 = io.BytesIO()
    Image.fromarray((img[..., 0].astype(np.uint16) * 257)).save(tiff16, format="TIFF")
    cases = [(b"hello, not an image", "x.png", "not an image"), (tiff16.getvalue(), "scan.tif", "TIFF image"),
             (_encoded(img, "BMP"), "a.bmp", "BMP image; expected PNG or JPEG")]
    for data, name, what in cases:
        with pytest.raises(I.LiveError) as e:
            I.decode_upload(data, name)
        assert what in str(e.value) and name in str(e.value) and "\n" not in str(e.value)


def test_size_caps_are_checked_before_decoding():
    big = _encoded(np.zeros((300, 300, 3), np.uint8), "PNG")
    small = I.LiveLimits(max_pixels=200 * 200)
    with pytest.raises(I.LiveError, match="90,000 pixels; the cap is 40,000"):
        I.decode_upload(big, "big.png", small)
    with pytest.raises(I.LiveError, match="the cap is 0 MB"):
        I.decode_upload(big, "big.png", I.LiveLimits(max_image_bytes=100))


# ---- the model -----------------------------------------------------------------------------------
def test_the_runs_model_is_its_manifests_and_a_changed_weights_file_is_refused(logdir, tmp_path, demo_model):
    assert demo_model.model["factory"] == "xai_core.demo.model:load_demo_model"
    assert demo_model.classes == tuple(str(i) for i in range(10)) and demo_model.input_size == (64, 64)
    m = json.loads((logdir / pages_runs.DEMO_A / "manifest.json").read_text())
    weights = tmp_path / "w.pt"
    shutil.copy(load_demo_model.__globals__["WEIGHTS_PATH"], weights)
    m["config"]["model"]["weights"] = str(weights)
    m["config"]["model"]["factory"] = "xai_core.demo.model:DemoCNN"
    from xai_core.models.loading import ModelSpec, model_identity

    m["model"] = model_identity(ModelSpec(factory="xai_core.demo.model:DemoCNN", weights=str(weights)))
    assert I.model_of_run(m, "r").model["weights"] == str(weights)        # unchanged: accepted
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(I.LiveError, match="weights file changed"):
        I.model_of_run(m, "r")
    m["config"]["model"] = {"module": "mypkg.Net"}
    with pytest.raises(I.LiveError, match="in-memory module"):
        I.model_of_run(m, "r")


def test_uploaded_onnx_with_wrong_input_or_class_count_gets_one_line(tmp_path):
    import torch

    names = I.parse_classes(json.dumps([str(i) for i in range(10)]).encode(), "classes.json", tmp_path)
    assert names == tuple(str(i) for i in range(10))
    assert I.parse_classes(b"cat\ndog\n", "c.txt", tmp_path) == ("cat", "dog")
    with pytest.raises(I.LiveError, match="lists 'cat' twice"):
        I.parse_classes(b"cat\ncat\n", "c.txt", tmp_path)
    good = pages_runs.export_onnx(load_demo_model(), tmp_path / "demo.onnx", shape=(2, 3, 64, 64))
    path = I.save_onnx(good.read_bytes(), "demo.onnx", tmp_path / "models")
    assert I.onnx_input(path) == (3, 64, 64)
    m = I.model_of_onnx(path, "demo.onnx", names, input_size=(64, 64), channels=3)
    assert L.load_handle(m).kind != "pytorch" and m.forward_only
    assert "gradient" not in {e["name"] for e in L.explainer_choices(m)}           # forward passes only
    wrong_k = I.model_of_onnx(path, "demo.onnx", names[:5], input_size=(64, 64), channels=3)
    with pytest.raises(I.LiveError) as e:
        L.load_handle(wrong_k)
    assert "expected (2, 5) logits" in str(e.value) and "\n" not in str(e.value)
    flat = pages_runs.export_onnx(torch.nn.Sequential(torch.nn.Linear(784, 10)), tmp_path / "flat.onnx", shape=(2, 784))
    with pytest.raises(I.LiveError, match=r"input is \[\['batch', 784\]\]; expected one image batch"):
        I.onnx_input(I.save_onnx(flat.read_bytes(), "flat.onnx", tmp_path / "models"))
    not_onnx = I.save_onnx(b"PK\x03\x04 zip, not onnx", "x.onnx", tmp_path / "models")
    with pytest.raises(I.LiveError, match="not an ONNX file"):
        I.onnx_input(not_onnx)


# ---- requests ------------------------------------------------------------------------------------
def test_requests_over_the_bounds_are_refused_before_anything_runs(demo_model):
    L.check_request(demo_model, REQ, 1)
    for req, n, what in ((L.LiveRequest(()), 1, "at least one explainer"), (REQ, 9, "1 … 8"),
                         (L.LiveRequest((("rise", (("masks", 30000),)),)), 1, "30,000 model passes"),
                         (L.LiveRequest((("occlusion", (("window", -1),)),)), 1, "window"),
                         (L.LiveRequest((("gradient", ()),), labels=(12,)), 1, "not classes of this model"),
                         (L.LiveRequest((("gradient", ()),), top_k=11), 1, "cap is 10")):
        with pytest.raises(I.LiveError, match=what):
            L.check_request(demo_model, req, n)


def test_main_params_are_the_registry_defaults():
    from xai_core.explainers import EXPLAINERS

    p = L.main_params("integrated_gradients")
    assert p["steps"] == EXPLAINERS.get("integrated_gradients").Params().steps and "method" not in p


# ---- computing and adding ----------------------------------------------------------------------------
def test_maps_equal_the_python_apis_and_add_to_a_run_stores_them(logdir, tmp_path, demo_model, handle):
    import xai_core

    img = pages_runs.demo_image(logdir, 1)
    items = [L.upload_item(img, "digit.png"), L.upload_item(pages_runs.demo_image(logdir, 2), "other.png")]
    engine = L.make_engine(demo_model, handle, REQ)
    seen = []
    res = L.explain_images(engine, demo_model, REQ, items, on_progress=lambda d, n, sid: seen.append((d, n)))
    assert seen == [(1, 2), (2, 2)] and not res.skipped and res.explainers == ["gradient", "gradcam", "occlusion"]
    first = res.images[0]
    assert len(first.labels) == 2 and first.labels["probability"].is_monotonic_decreasing
    assert set(first.scores["metric"]) == {"sparseness", "complexity"}
    # the same image through the Python API (the runner): the same maps
    from xai_core.demo import MEAN, STD

    api = xai_core.explain(load_demo_model(), [img], classes=list(demo_model.classes), activation="sigmoid",
                           mean=MEAN, std=STD, explainers=["gradient", "gradcam", "occlusion"],
                           metrics=["sparseness", "complexity"], top_k=2, out=tmp_path / "api", progress=False,
                           fast_forward="off")
    sid = api.samples["sample_id"][0]
    assert sorted(api.labels["label"]) == sorted(first.labels["label"])
    for e in res.explainers:
        for label in first.labels["label"]:
            np.testing.assert_allclose(first.maps[e][int(label)], api.map(sid, int(label), e), rtol=1e-5, atol=1e-7)

    shutil.rmtree(logdir / L.scratch_run(demo_model, REQ), ignore_errors=True)   # other tests share the logdir
    name, parts = L.add_to_run(engine, demo_model, REQ, items, logdir)
    again, parts2 = L.add_to_run(engine, demo_model, REQ, items[:1], logdir)
    assert again == name == L.scratch_run(demo_model, REQ) and name.startswith("scratch/demo_seed0-")
    assert parts == [0, 1] and parts2 == [2]
    run = RunTables.load(logdir / name, root=logdir)
    assert run.n_samples == 3 and list(run.scol("sample_id")) == [i.id for i in items] + [items[0].id]
    assert read_manifest(logdir / name)["status"] == "complete"
    from xai_core.dashboard.render import MapStore

    store = MapStore(logdir / name)
    for lrow in range(run.starts[0], run.starts[1]):
        label = int(run.lcol("label")[lrow])
        for e in res.explainers:
            stored = store.saliency(e, int(run.lcol("part")[lrow]), int(run.lcol("map_offset")[lrow]))
            assert np.array_equal(stored, first.maps[e][label])          # the maps the page showed
    shutil.rmtree(logdir / name)


def test_a_sample_of_the_run_keeps_its_ground_truth_and_boxes(logdir, demo_model, handle):
    from xai_core.dashboard.render import MapStore

    t = RunTables.load(logdir / pages_runs.DEMO_A, root=logdir)
    item = L.sample_item(t, MapStore(t.run_dir), 0, pages_runs.DEMO_A)
    assert item.id == t.scol("sample_id")[0] and list(item.labels) == t.gt_labels(0) and item.boxes
    res = L.explain_images(L.make_engine(demo_model, handle, REQ), demo_model, REQ, [item])
    img = res.images[0]
    assert set(img.labels["tag"]) <= {"TP", "FP", "FN", "TN"} and "TP" in set(img.labels["tag"])
    assert img.boxes and img.boxes[0][0] in demo_model.classes


# ---- at the run's settings (issue 25) --------------------------------------------------------
def test_the_runs_settings_are_the_defaults_with_resolved_values_and_passes(logdir, demo_model):
    from xai_core.dashboard import live_settings as P

    manifest = read_manifest(logdir / pages_runs.DEMO_A)
    settings = P.run_settings(manifest)
    occl = next(e for e in manifest["explainers"] if e["type"] == "occlusion")
    assert settings["occlusion"]["window"] == occl["params"]["window"] and set(settings) == {"gradient", "gradcam",
                                                                                            "occlusion"}
    assert P.default_explainers(demo_model, manifest) == ["gradient", "gradcam", "occlusion"]
    assert P.default_explainers(demo_model, None) == list(L.DEFAULT_EXPLAINERS)
    auto = P.plan(demo_model, L.LiveRequest((("occlusion", ()), ("integrated_gradients", (("steps", 7),)))))
    (h, w), win = demo_model.input_size, auto[0]["params"]["window"]
    assert win > 0 and auto[0]["params"]["stride"] > 0  # "0 = auto" shown as the value used
    from xai_core.explainers.occlusion import window_starts

    stride = auto[0]["params"]["stride"]
    assert auto[0]["passes"] == len(window_starts(h, win, stride)) * len(window_starts(w, win, stride)) + 1
    assert auto[1]["passes"] == 7
    text = P.plan_text(auto)
    assert f"window {win}" in text and "integrated_gradients (steps 7" in text and f"{auto[0]['passes'] + 7:,} model" in text


def test_a_repeated_click_is_not_recomputed_and_add_to_a_run_commits_the_maps_shown(logdir, demo_model, handle):
    img = pages_runs.demo_image(logdir, 4)
    items = [L.upload_item(img, "again.png")]
    engine = L.make_engine(demo_model, handle, REQ)
    first = L.explain_images(engine, demo_model, REQ, items)
    passes, hits = handle.passes, L.DONE.hits
    second = L.explain_images(engine, demo_model, REQ, items)
    assert handle.passes == passes and L.DONE.hits == hits + 1  # no model pass: the cached images
    assert second.images[0] is first.images[0]
    shutil.rmtree(logdir / L.scratch_run(demo_model, REQ), ignore_errors=True)
    name, parts = L.add_to_run(engine, demo_model, REQ, items, logdir, shown=first.images)
    assert handle.passes == passes and parts == [0]  # committed as computed, not recomputed
    from xai_core.dashboard.render import MapStore

    run, store = RunTables.load(logdir / name, root=logdir), MapStore(logdir / name)
    for lrow in range(len(run.lcol("label"))):
        label = int(run.lcol("label")[lrow])
        for e in REQ.entries():
            stored = store.saliency(e["name"], int(run.lcol("part")[lrow]), int(run.lcol("map_offset")[lrow]))
            assert np.array_equal(stored, first.images[0].maps[e["name"]][label])
    # a second image appended after it: its own place in the log
    other = [L.upload_item(pages_runs.demo_image(logdir, 5), "next.png")]
    shown = L.explain_images(engine, demo_model, REQ, other).images
    _, parts2 = L.add_to_run(engine, demo_model, REQ, other, logdir, shown=shown)
    run = RunTables.load(logdir / name, root=logdir)
    assert parts2 == [1] and list(run.scol("sample_index")) == [0, 1]
    assert list(run.scol("sample_id")) == [items[0].id, other[0].id]
    shutil.rmtree(logdir / name)


def test_an_upload_carries_its_ground_truth(logdir, demo_model, handle):
    img = pages_runs.demo_image(logdir, 1)
    plain = L.explain_images(L.make_engine(demo_model, handle, REQ), demo_model, REQ, [L.upload_item(img, "a.png")])
    top = int(plain.images[0].labels["label"][0])
    assert set(plain.images[0].labels["tag"]) <= {"FP", "TN"}  # no ground truth: what is predicted is FP
    engine = L.make_engine(demo_model, handle, REQ)
    got = L.explain_images(engine, demo_model, REQ, [L.upload_item(img, "a.png", [top])]).images[0]
    tags = dict(zip(got.labels["label"], got.labels["tag"]))
    assert tags[top] == "TP" and got.sample_id == plain.images[0].sample_id  # same image, other truth: not cached


def test_the_pass_bar_counts_the_planned_model_passes(logdir, demo_model, handle):
    img = pages_runs.demo_image(logdir, 0)[::-1].copy()  # an image no other test explained (not cached)
    engine = L.make_engine(demo_model, handle, REQ)
    planned, start, calls = L.planned_passes(demo_model, REQ), handle.passes, []
    L.explain_images(engine, demo_model, REQ, [L.upload_item(img, "bar.png")],
                     on_passes=lambda done, total: calls.append((done, total)))
    # at most the plan: occlusion shares its windows' passes between the labels
    assert 0 < handle.passes - start <= planned
    one = L.LiveRequest(REQ.explainers, top_k=1)
    start = handle.passes
    L.explain_images(L.make_engine(demo_model, handle, one), demo_model, one, [L.upload_item(img, "bar1.png")])
    assert handle.passes - start == L.planned_passes(demo_model, one)  # one label: exactly the plan
    assert calls[-1] == (planned, planned) and {t for _, t in calls} == {planned}
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
