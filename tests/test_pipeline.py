"""The part pipeline (xai_core/pipeline.py): reading runs ahead of the model and writing behind
it, in part order, bounded; an error on either side surfaces in the caller at its part and
loses nothing committed; a pipelined run equals a sequential one bit for bit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from test_runner import assert_same_run
from toy import toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.engine import RunContext, load_part
from xai_core.pipeline import PartPipeline
from xai_core.runner import run
from xai_core.summary import RunReader

WAIT = 20  # s: an event that should come at once; only a broken pipeline waits this long


class Recorder:
    """load / write / on_commit for a pipeline of plain values, recording what ran where."""

    def __init__(self, fail_load=None, fail_write=None):
        self.fail_load, self.fail_write = fail_load, fail_write
        self.events, self.lock = [], threading.Lock()
        self.loaded = {}  # part -> threading.Event set when its load started
        self.written = {}  # part -> Event set once written

    def event(self, part, kind):
        return (self.loaded if kind == "load" else self.written).setdefault(part, threading.Event())

    def log(self, *e):
        with self.lock:
            self.events.append(e)

    def load(self, part):
        self.log("load", part, threading.current_thread().name)
        self.event(part, "load").set()
        if part == self.fail_load:
            raise ValueError(f"cannot read part {part}")
        return f"batch {part}"

    def write(self, part, result):
        self.log("write", part, threading.current_thread().name)
        if part == self.fail_write:
            raise OSError(28, "No space left on device")
        self.event(part, "write").set()

    def commit(self, part):
        self.log("commit", part, threading.current_thread().name)

    def pipeline(self, parts, **kw):
        return PartPipeline(parts, self.load, self.write, on_commit=self.commit, **kw)


def test_the_next_part_is_read_and_the_last_written_while_the_caller_computes():
    rec = Recorder()
    with rec.pipeline(range(4)) as pipe:
        for part, batch in pipe.batches():
            assert batch == f"batch {part}"
            if part + 1 < 4:  # while "computing" part k, part k + 1 is read...
                assert rec.event(part + 1, "load").wait(WAIT), f"part {part + 1} was not read ahead"
            if part >= 1:  # ...and part k − 1 is written
                assert rec.event(part - 1, "write").wait(WAIT), f"part {part - 1} was not written behind"
            pipe.commit(part, {"part": part})
    assert [p for k, p, _ in rec.events if k == "commit"] == [0, 1, 2, 3]  # in part order
    assert {t for k, _, t in rec.events if k == "load"} == {"xai-read"}
    assert {t for k, _, t in rec.events if k in ("write", "commit")} == {"xai-write"}
    assert not any(t.is_alive() for t in pipe._threads)


def test_sequential_mode_does_each_step_in_turn_in_the_callers_thread():
    rec = Recorder()
    with rec.pipeline(range(3), background=False) as pipe:
        for part, _ in pipe.batches():
            pipe.commit(part, {})
    assert [(k, p) for k, p, _ in rec.events] == [(k, p) for p in range(3) for k in ("load", "write", "commit")]
    assert {t for *_, t in rec.events} == {threading.current_thread().name}


def test_reading_stays_one_part_ahead():
    rec, ahead = Recorder(), []
    with rec.pipeline(range(8)) as pipe:
        for part, _ in pipe.batches():
            threading.Event().wait(0.02)  # "compute": gives the reader every chance to run ahead
            ahead.append(max(p for k, p, _ in list(rec.events) if k == "load") - part)
            pipe.commit(part, {})
    assert max(ahead) == 1


@pytest.mark.parametrize("background", [True, False])
def test_a_write_error_stops_the_run_at_its_part_and_keeps_what_was_committed(background):
    rec = Recorder(fail_write=1)
    computed = []
    with pytest.raises(OSError, match="No space left"):
        with rec.pipeline(range(5), background=background) as pipe:
            for part, _ in pipe.batches():
                computed.append(part)
                pipe.commit(part, {})
    assert pipe.failed_part == 1
    assert [p for k, p, _ in rec.events if k == "commit"] == [0]
    assert [p for k, p, _ in rec.events if k == "write"] == [0, 1]  # nothing after the failure is written
    assert computed[:2] == [0, 1] and len(computed) <= 3  # the caller stops at its next hand-over


@pytest.mark.parametrize("background", [True, False])
def test_a_read_error_is_raised_at_its_part_after_the_parts_before_it_are_committed(background):
    rec = Recorder(fail_load=2)
    with pytest.raises(ValueError, match="cannot read part 2"):
        with rec.pipeline(range(5), background=background) as pipe:
            for part, _ in pipe.batches():
                pipe.commit(part, {})
    assert pipe.failed_part == 2
    assert [p for k, p, _ in rec.events if k == "commit"] == [0, 1]
    assert max(p for k, p, _ in rec.events if k == "load") == 2  # nothing after the bad part is read


def test_an_error_of_the_caller_first_commits_the_parts_it_computed():
    rec = Recorder()
    with pytest.raises(RuntimeError, match="model failed"):
        with rec.pipeline(range(5)) as pipe:
            for part, _ in pipe.batches():
                if part == 2:
                    raise RuntimeError("model failed")
                pipe.commit(part, {})
    assert pipe.failed_part is None
    assert [p for k, p, _ in rec.events if k == "commit"] == [0, 1]


def test_reading_a_part_draws_no_random_numbers(toy_data, tmp_path):
    """compute_part seeds per part; a reader running ahead must not consume its streams."""
    cfg = toy_config(toy_data, tmp_path / "run", explainers=["random"])
    cfg["model"]["fast_forward"] = "off"
    ctx = RunContext.build(config_from_dict(cfg))
    torch.manual_seed(123)
    np.random.seed(123)
    before = torch.get_rng_state(), np.random.get_state()
    load_part(ctx, list(range(6)))
    after = torch.get_rng_state(), np.random.get_state()
    assert torch.equal(before[0], after[0])
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1]) and before[1][2:] == after[1][2:]


ALL = dict(batch_size=3, explainers=["gradient", "random", {"type": "rise", "params": {"masks": 16}}],
           metrics=[{"type": "deletion_auc", "params": {"steps": 6}}, "pointing_game"],
           uncertainty={"enabled": True, "passes": 3}, counterfactual={"enabled": True, "layers": 1})


def test_pipelined_run_equals_sequential_run_and_reads_and_writes_in_the_background(toy_data, tmp_path, monkeypatch):
    from xai_core import engine
    from xai_core.summary import writer

    threads = {"write": set(), "read": set()}
    real_write, real_prepare = writer._write_group, engine.prepare_batch

    def write_group(*a, **k):
        threads["write"].add(threading.current_thread().name)
        return real_write(*a, **k)

    def prepare(*a, **k):
        threads["read"].add(threading.current_thread().name)
        return real_prepare(*a, **k)

    monkeypatch.setattr(writer, "_write_group", write_group)
    monkeypatch.setattr(engine, "prepare_batch", prepare)
    seq = config_from_dict(toy_config(toy_data, tmp_path / "sequential", **ALL))
    run(seq, seq.out, progress=False, pipelined=False)
    assert threads == {"write": {"MainThread"}, "read": {"MainThread"}}
    threads["write"].clear()
    threads["read"].clear()
    pipe = config_from_dict(toy_config(toy_data, tmp_path / "pipelined", **ALL))
    run(pipe, pipe.out, progress=False)
    assert threads["write"] == {"xai-write"}
    assert "xai-read" in threads["read"]  # (the fast-path probe reads its images at setup, in the caller)
    assert_same_run(pipe.out, seq.out)
    timing = RunReader(pipe.out).manifest["timing"]
    assert timing["pipelined"] is True and set(timing["background_s"]) == {"reading", "writing"}
    assert RunReader(seq.out).manifest["timing"]["pipelined"] is False


def test_a_writer_thread_error_fails_the_run_with_one_line_and_keeps_the_committed_parts(toy_data, tmp_path, capsys,
                                                                                      monkeypatch):
    from xai_core.summary import writer

    real, seen = writer._write_group, []

    def fails_on_part_2(tmp, *a):
        seen.append(threading.current_thread().name)
        if ".part-000002." in str(tmp):
            raise OSError(28, "No space left on device", str(tmp))
        return real(tmp, *a)

    monkeypatch.setattr(writer, "_write_group", fails_on_part_2)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(toy_config(toy_data, tmp_path / "run", batch_size=3, explainers=["random"],
                                              metrics=["pointing_game"])))
    assert main(["run", "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "part 2" in err and "no space left" in err, err
    assert set(seen) == {"xai-write"}
    r = RunReader(tmp_path / "run")
    assert r.status == "failed" and "part 2" in r.manifest["error"]
    assert r.parts() == [0, 1] and r.manifest["progress"]["done_parts"] == 2
    assert not list(Path(tmp_path / "run", "arrays").glob(".*tmp*"))
    assert main(["run", "--resume", str(tmp_path / "run"), "--quiet"]) == 2  # still failing: nothing lost either
    monkeypatch.setattr(writer, "_write_group", real)
    assert main(["run", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert RunReader(tmp_path / "run").parts() == [0, 1, 2, 3]


def interrupting_net():
    """ColourNet that raises KeyboardInterrupt (a Ctrl-C) in part 1's first pass."""
    from bad_nets import _BadOnSecondBatch

    def how(out):
        raise KeyboardInterrupt

    return _BadOnSecondBatch(how)


def test_ctrl_c_commits_the_parts_already_computed_then_marks_the_run_interrupted(toy_data, tmp_path):
    cfg = toy_config(toy_data, tmp_path / "run", batch_size=4, explainers=["random"], metrics=["pointing_game"])
    cfg["model"].update(factory="test_pipeline:interrupting_net", fast_forward="off")
    with pytest.raises(KeyboardInterrupt):
        run(config_from_dict(cfg), tmp_path / "run", progress=False)
    r = RunReader(tmp_path / "run")
    assert r.status == "interrupted" and r.parts() == [0]
    assert r.manifest["progress"]["done_parts"] == 1
    assert not (tmp_path / "run" / ".lock").exists()
    assert not any(t.name == "xai-write" for t in threading.enumerate())  # joined before the lock was let go
