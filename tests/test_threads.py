"""``threads:`` / ``--threads N`` (xai_core/threads.py): the default is the cores this process
may use (or $OMP_NUM_THREADS), a run sets torch's and ONNX Runtime's intra-op threads and puts
the caller's back, the manifest records them, and bad values stop with one line."""

from __future__ import annotations

import os

import pytest
import torch
import yaml

from toy import ColourNet, toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.engine import RunContext
from xai_core.errors import ConfigError
from xai_core.runner import run
from xai_core.summary import RunReader
from xai_core.threads import available_cores, cpu_threads, default_threads, resolve_threads

SEEN: list[int] = []


class ThreadsNet(ColourNet):
    """ColourNet that records torch's intra-op threads on every forward pass."""

    def forward(self, x):
        SEEN.append(torch.get_num_threads())
        return super().forward(x)


def threads_net():
    return ThreadsNet().eval()


def light(toy_data, out, **over) -> dict:
    cfg = toy_config(toy_data, out, batch_size=6, explainers=["random"], metrics=["pointing_game"], **over)
    cfg["model"].update(factory="test_threads:threads_net", fast_forward="off")
    return cfg


def test_default_is_the_affinity_mask_unless_omp_num_threads_is_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert available_cores() == len(os.sched_getaffinity(0))
    assert default_threads() == len(os.sched_getaffinity(0)) == resolve_threads(None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not a count: ignored
    assert default_threads() == available_cores()
    assert resolve_threads(2) == 2


def test_a_process_limited_to_one_core_defaults_to_one_thread(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        assert default_threads() == 1  # torch's own default goes by the machine's cores
    finally:
        os.sched_setaffinity(0, old)


def test_a_run_uses_its_threads_and_gives_the_callers_back(toy_data, tmp_path):
    before = torch.get_num_threads()  # 1 (tests/conftest.py) unless an earlier test changed it
    want = 2 if before != 2 else 1
    SEEN.clear()
    cfg = config_from_dict(light(toy_data, tmp_path / "run", threads=want))
    run(cfg, cfg.out, progress=False)
    assert SEEN and set(SEEN) == {want}
    assert torch.get_num_threads() == before
    assert RunReader(cfg.out).manifest["timing"]["threads"] == want
    assert RunReader(cfg.out).manifest["config"]["threads"] == want


def test_onnx_runtime_sessions_get_the_runs_threads(toy_data, tmp_path):
    """The fast path's session (and an ONNX model's: both come from models.onnx.session_options)
    takes torch's threads as the run set them."""
    cfg = toy_config(toy_data, tmp_path / "run", explainers=["random"], threads=2)
    cfg["model"]["fast_forward"] = "on"
    config = config_from_dict(cfg)
    with cpu_threads(config.threads):
        ctx = RunContext.build(config)
    assert ctx.fast_forward["backend"] == "onnxruntime"
    assert ctx.model.exported.session.get_session_options().intra_op_num_threads == 2


def test_threads_flag_new_run_and_resume(toy_data, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(light(toy_data, tmp_path / "run")))
    SEEN.clear()
    assert main(["run", "--config", str(path), "--threads", "2", "--quiet"]) == 0
    assert set(SEEN) == {2}
    # --threads is how many cores, not what is computed: a resume may change it
    run(config_from_dict(light(toy_data, tmp_path / "again")), tmp_path / "again", progress=False, stop_after_parts=1)
    SEEN.clear()
    assert main(["run", "--resume", str(tmp_path / "again"), "--threads", "1", "--quiet"]) == 0
    assert set(SEEN) == {1}
    assert RunReader(tmp_path / "again").manifest["timing"]["threads"] == 1


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "threads is 0; expected an integer ≥ 1"),
    (["--set", "threads=-2"], "threads is -2; expected an integer ≥ 1"),
    (["--set", "threads=two"], "threads is 'two'; expected an integer or null"),
])
def test_bad_thread_counts_are_one_line(toy_data, tmp_path, capsys, args, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(light(toy_data, tmp_path / "run")))
    assert main(["run", "--config", str(path), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_cpu_threads_refuses_zero():
    with pytest.raises(ConfigError, match="threads is 0"):
        with cpu_threads(0):
            pass
