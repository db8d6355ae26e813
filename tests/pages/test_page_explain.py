"""The "Explain an image" page under AppTest: upload, compute, add to a run and find it in the
grid; bad uploads get one line each and the page goes on; an ONNX model with its class names.
Also the report buttons of the assessment page."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import pages_runs
from apptest_util import open_page, pictures
from xai_core.dashboard import RunTables
from xai_core.dashboard.render import MapStore
from xai_core.demo.model import load_demo_model

PAGE = "pages/explain.py"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return pages_runs.pages_logdir(tmp_path_factory)


def _upload(at, *files):
    at.file_uploader(key="live_files").set_value([(n, d, "image/png") for n, d in files]).run()
    return at


def test_upload_explain_add_to_a_run_and_see_it_in_the_grid(monkeypatch, logdir):
    shutil.rmtree(logdir / "scratch", ignore_errors=True)     # other tests add to the same logdir
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.DEMO_A)
    assert any("model of run demo/seed0" in c.value for c in at.caption)
    assert at.multiselect(key="live_explainers").value == ["gradient", "gradcam", "occlusion"]
    img = pages_runs.demo_image(logdir, 3)
    _upload(at, ("three.png", pages_runs.png_bytes(img)))
    at.button(key="live_go").click().run()
    assert not at.exception and not at.error
    captions = [c for i in at.image for c in i.captions]
    assert "image" in captions and sum(c.startswith(("gradient · ", "gradcam · ", "occlusion · ")) for c in captions) == 3
    scores = next(t.value for t in at.table if "Sparseness (Gini)" in t.value.columns)
    assert list(scores.index) == ["gradient", "gradcam", "occlusion"]
    result = at.session_state["live_result"]["result"]
    assert result.images[0].image.shape == (64, 64, 3)

    at.button(key="live_add").click().run()
    assert not at.exception and not at.error
    name, parts = at.session_state["live_result"]["added"]
    assert name.startswith("scratch/demo_seed0-") and parts == [0]
    assert any(name in s.value for s in at.success)
    t = RunTables.load(logdir / name, root=logdir)
    sid = result.images[0].sample_id
    assert list(t.scol("sample_id")) == [sid]
    label = int(t.lcol("label")[0])
    stored = MapStore(t.run_dir).saliency("occlusion", int(t.lcol("part")[0]), int(t.lcol("map_offset")[0]))
    assert np.array_equal(stored, result.images[0].maps["occlusion"][label])

    # the scratch run in the grid, like any run
    grid = open_page(monkeypatch, logdir, "pages/saliency.py", name)
    assert not grid.exception and pictures(grid) == [sid]
    shutil.rmtree(logdir / name)


def test_bad_uploads_get_one_line_each_and_the_good_one_is_explained(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.DEMO_A)
    tiff = io.BytesIO()
    Image.fromarray(np.full((64, 64), 40000, np.uint16)).save(tiff, format="TIFF")
    good = pages_runs.png_bytes(pages_runs.demo_image(logdir, 0))
    _upload(at, ("notes.png", b"this is not an image"), ("scan16.png", tiff.getvalue()), ("good.png", good))
    errors = [e.value for e in at.error]
    assert len(errors) == 2 and "notes.png is not an image" in errors[0] and "scan16.png is a TIFF image" in errors[1]
    assert all("\n" not in e for e in errors) and not at.exception
    at.multiselect(key="live_explainers").set_value(["gradient"]).run()
    at.button(key="live_go").click().run()
    assert not at.exception and len(at.session_state["live_result"]["result"].images) == 1


def test_a_request_over_the_bounds_is_refused_and_the_page_keeps_working(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.DEMO_A)
    _upload(at, ("a.png", pages_runs.png_bytes(pages_runs.demo_image(logdir, 0))))
    at.multiselect(key="live_explainers").set_value(["rise"]).run()
    at.number_input(key="live_p_rise_masks").set_value(50_000).run()
    at.button(key="live_go").click().run()
    assert len(at.error) == 1 and "50,000 model passes" in at.error[0].value and not at.exception
    at.number_input(key="live_p_rise_masks").set_value(200).run()
    at.button(key="live_go").click().run()
    assert not at.error and len(at.session_state["live_result"]["result"].images) == 1


def test_a_sample_of_the_active_run_with_named_labels(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.DEMO_A)
    at.radio(key="live_kind").set_value("A sample of the active run").run()
    at.radio(key="live_label_mode").set_value("named").run()
    at.multiselect(key="live_named").set_value([7, 2]).run()
    at.button(key="live_go").click().run()
    img = at.session_state["live_result"]["result"].images[0]
    assert sorted(img.labels["label"]) == [2, 7] and img.boxes          # the run's boxes come along


def test_an_uploaded_onnx_model_and_a_wrong_class_file(monkeypatch, logdir, tmp_path):
    onnx = pages_runs.export_onnx(load_demo_model(), tmp_path / "demo.onnx", shape=(2, 3, 64, 64)).read_bytes()
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.DEMO_A)
    at.radio(key="live_source").set_value("An ONNX file").run()
    at.file_uploader(key="live_onnx").set_value(("demo.onnx", onnx, "application/octet-stream")).run()
    at.file_uploader(key="live_classes").set_value(("classes.json", json.dumps(["a", "b"]).encode(),
                                                    "application/json")).run()
    assert len(at.error) == 1 and "expected (2, 2) logits" in at.error[0].value and not at.exception
    at.file_uploader(key="live_classes").set_value(("classes.json", json.dumps([str(i) for i in range(10)]).encode(),
                                                    "application/json")).run()
    assert not at.error
    assert at.multiselect(key="live_explainers").value == ["occlusion"]      # forward passes only
    _upload(at, ("a.png", pages_runs.png_bytes(pages_runs.demo_image(logdir, 0))))
    at.button(key="live_go").click().run()
    assert not at.exception and not at.error and at.session_state["live_result"]["result"].explainers == ["occlusion"]


def test_assessment_page_offers_the_report(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, "pages/comprehensive.py", pages_runs.DEMO_A)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download report (HTML)" in labels and "Download report (PDF)" in labels


def test_the_runs_settings_are_the_defaults_and_the_plan_is_shown(monkeypatch, logdir):
    from xai_core.summary.reader import read_manifest

    at = open_page(monkeypatch, logdir, PAGE, pages_runs.DEMO_B)
    occl = next(e for e in read_manifest(logdir / pages_runs.DEMO_B)["explainers"] if e["type"] == "occlusion")
    assert at.number_input(key="live_p_occlusion_window").value == occl["params"]["window"]
    plan = next(c.value for c in at.caption if c.value.startswith("At: "))
    assert f"occlusion (window {occl['params']['window']}, stride " in plan and "model passes per image and label" in plan
    assert "stride 0" not in plan  # the value used, not "0 = auto"
