"""Run listing, status and safe resolution of run names (xai_core.dashboard.runs)."""

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import dash_runs
from xai_core.dashboard.runs import ensure_inside, list_runs, parse_logdir, resolve_run, run_info, runs_frame
from xai_core.errors import SummaryError


def test_logdir_from_args_then_env_then_default():
    assert parse_logdir(["--logdir", "a"], {"XAI_LOGDIR": "b"}) == Path("a")
    assert parse_logdir(["-x", "--other"], {"XAI_LOGDIR": "b"}) == Path("b")
    assert parse_logdir([], {}) == Path("summaries")


def test_lists_every_run_recursively_with_status(dash_logdir):
    runs = {r.name: r for r in list_runs(dash_logdir)}
    assert {dash_runs.RUNNER_RUN, dash_runs.SYNTH_RUN, "broken/corrupt_manifest", "broken/newer",
            "broken/corrupt_part"} <= set(runs)
    toy = runs[dash_runs.RUNNER_RUN]
    assert (toy.status, toy.done_samples, toy.total_samples) == ("complete", 12, 12)
    assert toy.explainers == ("gradient", "gradcam", "random") and "iosr" in toy.metrics
    assert toy.model == "toy:colour_net"


def test_unreadable_runs_say_why(dash_logdir):
    runs = {r.name: r for r in list_runs(dash_logdir)}
    assert runs["broken/corrupt_manifest"].status == "unreadable"
    assert "corrupt manifest" in runs["broken/corrupt_manifest"].error
    newer = runs["broken/newer"]
    assert newer.status == "unreadable" and "newer" in newer.error and "upgrade" in newer.error
    # A corrupt table is found only when the run is opened; the listing still reads it.
    assert runs["broken/corrupt_part"].status == "complete"
    frame = runs_frame(list(runs.values()))
    assert len(frame) == len(runs) and frame["status"].str.startswith("unreadable").sum() == 2


def test_running_run_shows_progress_and_staleness(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    old = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(timespec="seconds")
    (run / "manifest.json").write_text(json.dumps({
        "format_version": 1, "status": "running", "updated": old,
        "progress": {"total_samples": 40, "done_samples": 10}}))
    info = run_info(tmp_path, run)
    assert info.progress == pytest.approx(0.25) and info.stale
    assert "25%" in info.status_text and "--resume" in info.status_text
    fresh = run_info(tmp_path, run, now=datetime.now(timezone.utc) - timedelta(hours=2))
    assert not fresh.stale


@pytest.mark.parametrize("name", ["../etc", "/etc", "synthetic/../../x", "", "nope", "synthetic/tables"])
def test_resolve_accepts_only_listed_runs(dash_logdir, name):
    with pytest.raises(SummaryError):
        resolve_run(dash_logdir, name)


def test_resolve_listed_run(dash_logdir):
    assert resolve_run(dash_logdir, dash_runs.SYNTH_RUN).path == dash_logdir / dash_runs.SYNTH_RUN


def test_symlinked_run_outside_logdir_is_never_listed(tmp_path, dash_logdir):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    os.symlink(dash_logdir / dash_runs.SYNTH_RUN, logdir / "escape")
    assert list_runs(logdir) == []
    with pytest.raises(SummaryError):
        resolve_run(logdir, "escape")
    with pytest.raises(SummaryError, match="outside the log directory"):
        ensure_inside(logdir, logdir / "escape" / "manifest.json")


def test_a_run_in_its_sanity_phase_names_it_instead_of_running_100_percent(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "format_version": 1, "status": "running", "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "progress": {"total_samples": 40, "done_samples": 40, "phase": "sanity"}}))
    info = run_info(tmp_path, run)
    assert info.phase == "sanity" and "sanity check" in info.status_text and "100%" not in info.status_text
