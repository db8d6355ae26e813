"""The step axis of the summary format (FORMAT.md "Steps"): old runs read as one step, every
step is verified, a crash while a step is written loses that step only."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import xai_core
from xai_core.errors import SummaryError
from xai_core.summary import FORMAT_VERSION, RunReader
from xai_core.summary.manifest import read_manifest, write_manifest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from steps_fixtures import CLASSES, TinyCNN, squares  # noqa: E402


@pytest.fixture(scope="module")
def stepped(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    images, labels = squares(6)
    out = tmp_path_factory.mktemp("steps") / "run"
    mon = xai_core.Monitor(images, labels=labels.tolist(), classes=CLASSES, out=out)
    model = TinyCNN()
    for step in (0, 10, 20):
        with torch.no_grad():
            model.head.bias.add_(0.3)
        mon.log(model, step=step)
    return out


def test_manifest_lists_the_steps(stepped):
    m = read_manifest(stepped)
    assert m["format_version"] == FORMAT_VERSION == 3
    assert [e["step"] for e in m["steps"]] == [0, 10, 20]
    assert all(e["dir"] == f"steps/step-{e['step']:09d}" and e["checksum"].startswith("crc32:") for e in m["steps"])
    for e in m["steps"]:
        assert read_manifest(stepped / e["dir"])["step"] == e["step"]
    assert RunReader(stepped).steps == [0, 10, 20] and RunReader(stepped).step == 20
    assert RunReader(stepped, step=10).run_dir == stepped / "steps" / "step-000000010"


def test_a_format_2_run_reads_as_one_step(stepped, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(stepped / "steps" / "step-000000000", one)
    m = read_manifest(one)
    m.pop("step")
    m["format_version"] = 2
    write_manifest(one, m)
    r = RunReader(one)
    assert r.steps == [0] and r.step == 0 and r.run_dir == one and r.manifest["format_version"] == 3
    run = xai_core.open_run(one)
    assert run.steps == [0] and set(run.scores["step"]) == {0} and len(run.samples) == 6
    assert RunReader(one).verify()["steps"] == 1


def test_verify_covers_every_step(stepped, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(stepped, bad)
    assert RunReader(bad).verify() == {"parts": 3, "without_record": 0, "without_table_checksums": 0, "steps": 3}
    f = next((bad / "steps" / "step-000000000" / "tables" / "scores").glob("part-*.parquet"))
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    assert RunReader(bad).steps == [0, 10, 20]  # the newest step reads; the damaged one is found
    with pytest.raises(SummaryError, match="step-000000000.*does not match its checksum"):
        RunReader(bad).verify()
    out = subprocess.run([sys.executable, "-m", "xai_core", "inspect", "--verify", str(bad)], capture_output=True,
                         text=True)
    assert out.returncode != 0 and "step-000000000" in out.stderr and "Traceback" not in out.stderr


def test_a_replaced_step_manifest_is_damage(stepped, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(stepped, bad)
    step = bad / "steps" / "step-000000010"
    m = read_manifest(step)
    m["status"] = "failed"
    write_manifest(step, m)  # validly sealed, but not the manifest the run committed
    with pytest.raises(SummaryError, match="step 10's manifest is not the one committed"):
        RunReader(bad).verify()


def test_bad_steps_key_is_refused(stepped, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(stepped, bad)
    m = read_manifest(bad)
    m["steps"][0]["dir"] = "../elsewhere"
    write_manifest(bad, m)
    with pytest.raises(SummaryError, match="`steps` is"):
        RunReader(bad)


@pytest.mark.parametrize("where", ["part", "placed"])
def test_sigkill_during_log_loses_that_step_only(tmp_path, where):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, str(TESTS / "kill_in_log.py"), str(out), where], capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    left = sorted(x.name for x in (out / "steps").iterdir())
    assert len(left) == 3  # steps 0, 1 and the remains of 2
    run = xai_core.open_run(out)
    assert run.steps == [0, 1] and sorted(set(run.scores["step"])) == [0, 1]
    assert RunReader(out).verify()["steps"] == 2
    # the training goes on: the next log removes the remains and commits step 2
    import torch

    torch.manual_seed(0)
    images, labels = squares(6)
    mon = xai_core.Monitor(images, labels=labels.tolist(), classes=CLASSES, out=out)
    assert mon.steps == [0, 1] and mon.log(TinyCNN(), step=2)
    assert sorted(x.name for x in (out / "steps").iterdir()) == [f"step-{s:09d}" for s in (0, 1, 2)]
    assert RunReader(out).verify()["steps"] == 3
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
