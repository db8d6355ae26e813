"""Runs page under AppTest: every run listed with its status; broken runs say why."""

import dash_runs
from apptest_util import open_page, texts


def test_lists_runs_and_their_problems(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, None)
    body = texts(at)
    for name in (dash_runs.RUNNER_RUN, dash_runs.SYNTH_RUN, "broken/newer", "broken/corrupt_manifest"):
        assert f"`{name}`" in body
    errors = " ".join(e.value for e in at.error)
    assert "corrupt manifest" in errors and "upgrade xaiboard" in errors
    assert "12/12 samples" in body
    buttons = {b.key: b for b in at.button}
    sal = [b for k, b in buttons.items() if k.startswith("runs_sal_broken_newer")]
    assert sal and sal[0].disabled


def test_open_button_goes_to_the_saliency_page_with_the_run_in_the_url(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, None)
    key = next(b.key for b in at.button if b.key.startswith("runs_sal_toy_colour"))
    at.button(key=key).click().run()
    assert not at.exception
    assert at.title[0].value == "Saliency maps"
    assert at.query_params["run"] == dash_runs.RUNNER_RUN


def test_missing_logdir_is_explained(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path / "nowhere", None)
    assert "does not exist" in at.error[0].value


def test_running_run_shows_progress_and_its_committed_parts(monkeypatch, tmp_path):
    run = dash_runs.write_running(tmp_path / "live")
    at = open_page(monkeypatch, tmp_path, None)
    bar = at.get("progress")[0]
    assert bar.value == 60 and "running 60% (3/5 samples)" in bar.proto.text
    at.query_params["run"] = "live"
    at.switch_page("pages/saliency.py").run()
    assert not at.exception and "**3** of 3 images match" in texts(at)
    assert any("refreshes by itself" in c.value for c in at.caption)
    # the writer commits the second part: the next rerun shows it (the cache key changed)
    dash_runs.write_synthetic(tmp_path / "done")
    for f in ("tables/samples/part-000001.parquet",):
        (run / f).write_bytes((tmp_path / "done" / f).read_bytes())
    (run / "manifest.json").write_text((tmp_path / "done" / "manifest.json").read_text())
    at.run()
    assert "**5** of 5 images match" in texts(at)


def test_run_name_from_the_url_is_shown_as_plain_text(monkeypatch, dash_logdir):
    evil = "[click me](https://evil.example) ![x](https://evil.example/pixel.png) **bold**"
    at = open_page(monkeypatch, dash_logdir, None, run=evil)
    shown = [w.value for w in at.sidebar.warning] + [m.value for m in at.sidebar.markdown]
    assert not any("evil.example" in v for v in shown)  # never rendered as markdown
    assert evil in [t.value for t in at.sidebar.text]   # shown verbatim, as plain text


def test_a_latest_symlink_does_not_break_the_runs_page(monkeypatch, tmp_path):
    import os

    dash_runs.write_synthetic(tmp_path / "run1")
    os.symlink("run1", tmp_path / "latest")
    at = open_page(monkeypatch, tmp_path, None)
    assert "`run1`" in texts(at) and "`latest`" not in texts(at)
