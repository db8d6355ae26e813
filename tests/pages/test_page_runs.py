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
    assert "**samples** 12/12" in body
    links = {(l.proto.label, l.proto.query_string): l.proto for l in at.get("page_link")}
    assert links[("Saliency maps", "run=broken%2Fnewer")].disabled
    assert not links[("Saliency maps", "run=toy%2Fcolour")].disabled


def test_open_links_carry_the_run_to_the_page(monkeypatch, dash_logdir):
    """Links, not buttons that call st.switch_page from inside the auto-refreshing run list: a
    page switched from a fragment run went blank when the fragment's next tick arrived after the
    switch (issue 18 item 2; reproduced in chromium under load, see tests/browser)."""
    at = open_page(monkeypatch, dash_logdir, None)
    assert not [b for b in at.button if b.key and b.key.startswith("runs_")]
    links = [l.proto for l in at.get("page_link") if l.proto.query_string == "run=toy%2Fcolour"]
    assert {l.label for l in links} == {"Saliency maps", "Assessment"}
    assert all(not l.disabled for l in links)
    at.query_params["run"] = dash_runs.RUNNER_RUN              # where the link goes: the page with the run
    at.switch_page("pages/saliency.py").run()
    assert not at.exception and at.title[0].value == "Saliency maps"
    assert at.query_params["run"] == dash_runs.RUNNER_RUN


def test_an_empty_logdir_says_how_to_write_a_run_there(monkeypatch, tmp_path):
    """Issue 18 item 11: "Choose a run" when none exists, a `make demo` hint that writes to
    summaries/, and an empty table header below."""
    import shlex

    from xai_core.cli import build_parser

    logdir = tmp_path / "my logs"
    logdir.mkdir()
    for page in (None, "pages/saliency.py", "pages/comprehensive.py"):
        at = open_page(monkeypatch, logdir, page)
        hint = next(i.value for i in at.info if "holds no runs" in i.value)
        assert f"`{logdir}`" in hint and "Choose a run" not in " ".join(i.value for i in at.info)
        cmd = hint.split("`xai-core ", 1)[1].split("`", 1)[0]
        args = build_parser().parse_args(shlex.split(cmd))
        assert args.command == "demo" and args.out == f"{logdir}/demo"   # writes into the served logdir
        assert not any(m.value in ("**run**", "**status**") for m in at.markdown)


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
