"""Cases that used to end in a traceback and now end in one line (issue 19 items 4 and 5):
a stale lock on a read-only file system, a YAML file that is not a map, a forward that fails on
the fast path's probe batches; and the run lock taken before the model's setup."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toy import toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.errors import SummaryError
from xai_core.runner import run
from xai_core.summary import RunReader

TESTS = Path(__file__).parent
LIGHT = dict(batch_size=4, explainers=["random"], metrics=["pointing_game"])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_resume_on_a_read_only_file_system_with_a_stale_lock_is_one_line(toy_data, tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode:
        pytest.skip("needs unshare -rm (a private mount namespace) to mount the run read-only")
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", **LIGHT))
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    (Path(cfg.out) / ".lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    # The run directory read-only in a mount namespace of the runner's own, as after a
    # remount on a failing disk: what SIGKILL left behind cannot be cleaned up.
    script = (f"mount --bind {cfg.out} {cfg.out} && mount -o remount,bind,ro {cfg.out} && "
              f"exec {sys.executable} -m xai_core run --resume {cfg.out} --quiet")
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, cwd=TESTS,
                         timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be removed (Read-only file system)" in lines[0], res.stderr
    assert RunReader(cfg.out).parts() == [0]  # nothing lost


@pytest.mark.parametrize("text, kind", [("- model\n- dataset\n", "a list"), ("42\n", "a number"),
                                        ("just a sentence\n", "a string")])
@pytest.mark.parametrize("flags", [["--out", "elsewhere"], ["--set", "seed=1"], []])
def test_a_yaml_file_that_is_not_a_map_is_one_line(tmp_path, capsys, text, kind, flags):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--quiet", *flags]) == 2
    err = one_line(capsys)
    assert f"the configuration is {kind}; expected a YAML map" in err


def test_a_second_writer_is_refused_before_it_sets_its_model_up(toy_data, tmp_path):
    out = tmp_path / "run"
    cfg = config_from_dict(toy_config(toy_data, out, **LIGHT))
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))  # alive
    marker = tmp_path / "set-up"
    raw = toy_config(toy_data, out, **LIGHT)
    raw["model"].update(factory="toy:marking_colour_net", factory_kwargs={"marker": str(marker)})
    with pytest.raises(SummaryError, match="is being written by process"):
        run(config_from_dict(raw), out, progress=False, overwrite=True)
    assert not marker.exists()  # refused before the (expensive) model setup
    (out / ".lock").unlink()
    run(config_from_dict(raw), out, progress=False, overwrite=True)
    assert marker.exists() and RunReader(out).status == "complete"


def test_a_refusal_before_the_run_leaves_no_directory(toy_data, tmp_path):
    raw = toy_config(toy_data, tmp_path / "new" / "run", **LIGHT)
    raw["model"]["factory"] = "toy:no_such_factory"
    with pytest.raises(Exception, match="no callable 'no_such_factory'"):
        run(config_from_dict(raw), raw["out"], progress=False)
    assert not (tmp_path / "new" / "run").exists()


def test_a_forward_that_fails_on_probe_batches_keeps_torch_and_says_why(toy_data, tmp_path, capsys):
    """Under fast_forward auto the probe fed the model batches unguarded (ValueError, rc 1)."""
    raw = toy_config(toy_data, tmp_path / "run", explainers=["occlusion"], metrics=[], batch_size=1,
                     explain_batch_size=1, dataset={"kind": "manifest", "path": str(toy_data), "limit": 6})
    raw["model"].update(factory="toy:picky_colour_net", factory_kwargs={"most": 1})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", "--config", str(path), "--quiet"]) == 0  # every batch of this run has 1 image
    ff = RunReader(tmp_path / "run").manifest["model"]["fast_forward"]
    assert ff["backend"] == "torch"
    assert ff["reason"].startswith("the model raised ValueError: this network takes no batch of 3 images on a "
                                   "probe batch of 3 image(s)")
    # The same model fed batches of 4 by the run itself: the part fails with one line.
    raw.update(batch_size=4, explain_batch_size=4, out=str(tmp_path / "run4"))
    path.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["run", "--config", str(path), "--quiet"]) == 2
    err = one_line(capsys)
    assert "part 0" in err and "this network takes no batch of 4 images" in err
