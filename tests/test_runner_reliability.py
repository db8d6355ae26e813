"""Fault and bad-input cases of the runner (issue 11): the run directory is owned by one
writer, resume checks identity, damage and bad input become one line, nothing committed is lost."""

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bad_nets import _BadOnSecondBatch, flaky_net, nan_net  # noqa: E402,F401 (model.factory names)
from toy import toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.dashboard.runs import run_info
from xai_core.errors import ConfigError, SummaryError
from xai_core.runner import run
from xai_core.summary import RunReader
from xai_core.summary.manifest import read_manifest, write_manifest

LOCK = ".lock"  # xai_core.summary.lock.LOCK, literal so this file also runs against older code
TESTS = Path(__file__).parent
LIGHT = dict(batch_size=4, explainers=["random"], metrics=["pointing_game"])


def light(toy_data, out, **over):
    return config_from_dict(toy_config(toy_data, out, **{**LIGHT, **over}))


def light_file(toy_data, tmp_path, out, **over):
    path = tmp_path / f"run-{out.name}.yaml"
    path.write_text(yaml.safe_dump(toy_config(toy_data, out, **{**LIGHT, **over})))
    return path


def start_slow_runner(toy_data, tmp_path, out, *, until, delay: float = 0.02, hold: Path | None = None) -> subprocess.Popen:
    """``xai-core run`` of the slow toy model (parts of 2 images, ``delay`` s per forward call)
    in a subprocess, returned once ``until()`` holds (it fails the test if the runner exits
    first or 60 s pass). ``hold`` (a file the test made): after its first committed part the
    model waits while it exists (``toy.SlowColourNet``), so the run is still going when the
    test sends its signal."""
    path = light_file(toy_data, tmp_path, out, batch_size=2)
    data = yaml.safe_load(path.read_text())
    kwargs = {"delay": delay} | ({"hold_after": str(out / "tables" / "samples"), "hold": str(hold)} if hold else {})
    data["model"].update(factory="toy:slow_colour_net", factory_kwargs=kwargs)
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "xai_core", "run", "--config", str(path), "--quiet"],
                            env=env, cwd=TESTS, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not until():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the runner wrote nothing within 60 s"
        time.sleep(0.05)
    return proc


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ---- 1. the run directory has one owner --------------------------------------------------
def test_overwrite_refuses_a_directory_without_a_run(toy_data, tmp_path):
    out = tmp_path / "notarun"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "precious.txt").write_text("keep me")
    (out / "arrays").mkdir()
    with pytest.raises(SummaryError, match="not an xaiboard run"):
        run(light(toy_data, out), out, progress=False, overwrite=True)
    assert (out / "tables" / "precious.txt").read_text() == "keep me"
    assert (out / "arrays").is_dir()


def test_a_held_lock_refuses_run_resume_and_overwrite(toy_data, tmp_path):
    cfg = light(toy_data, tmp_path / "run")
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    before = sorted(p.name for p in (Path(cfg.out) / "tables" / "samples").iterdir())
    # Another live process (our parent) on this host holds the lock.
    (Path(cfg.out) / LOCK).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    for kw in (dict(resume=True), dict(overwrite=True)):
        with pytest.raises(SummaryError, match="is being written by process"):
            run(cfg, cfg.out, progress=False, **kw)
    assert sorted(p.name for p in (Path(cfg.out) / "tables" / "samples").iterdir()) == before


def test_a_stale_lock_of_a_dead_process_is_broken(toy_data, tmp_path):
    cfg = light(toy_data, tmp_path / "run")
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (Path(cfg.out) / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    run(cfg, cfg.out, progress=False, resume=True)
    assert RunReader(cfg.out).status == "complete"
    assert not (Path(cfg.out) / LOCK).exists()  # released at the end


def test_lock_of_another_host_is_never_broken(tmp_path):
    from xai_core.summary.lock import RunLock

    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid"}))
    with pytest.raises(SummaryError, match="elsewhere.invalid"):
        RunLock(tmp_path).acquire()
    (tmp_path / "x").mkdir()
    with RunLock(tmp_path / "x") as lock:
        assert lock.held and json.loads(lock.path.read_text())["pid"] == os.getpid()
        with pytest.raises(SummaryError, match=f"process {os.getpid()}"):
            RunLock(tmp_path / "x").acquire()  # held by a live process: never broken
    assert not (tmp_path / "x" / LOCK).exists()


def test_concurrent_overwrite_does_not_mix_two_configs(toy_data, tmp_path):
    """Runner A (slow) writes; runner B with another config and --overwrite must refuse."""
    out = tmp_path / "shared"
    # 0.5 s per forward call: A is still writing (6 parts to go) when B tries to take over
    proc = start_slow_runner(toy_data, tmp_path, out, until=lambda: (out / "tables" / "samples").is_dir(),
                             delay=0.5)
    try:
        cfg_b = light(toy_data, out, batch_size=3)
        with pytest.raises(SummaryError, match="is being written by process"):
            run(cfg_b, out, progress=False, overwrite=True)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    r = RunReader(out)
    assert r.status == "complete" and r.manifest["config"]["batch_size"] == 2
    assert len(r.samples()) == 12 and set(r.samples()["part"]) == set(range(6))


# ---- 2. resume checks identity -------------------------------------------------------------
def test_resume_refuses_a_changed_dataset_unless_forced(toy_data, tmp_path, capsys):
    cfg = light(toy_data, tmp_path / "run")
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    lines = toy_data.read_text().splitlines()
    a, b = json.loads(lines[4]), json.loads(lines[5])
    a["image"], b["image"] = b["image"], a["image"]  # same count, items swapped
    lines[4], lines[5] = json.dumps(a), json.dumps(b)
    toy_data.write_text("\n".join(lines) + "\n")
    assert main(["run", "--resume", str(cfg.out), "--quiet"]) == 2
    err = one_line(capsys)
    assert "dataset sha256 changed" in err and "--force" in err
    assert RunReader(cfg.out).parts() == [0]
    assert main(["run", "--resume", str(cfg.out), "--quiet", "--force"]) == 0
    assert RunReader(cfg.out).status == "complete"


def test_resume_refuses_changed_weights(toy_data, tmp_path):
    import torch

    from toy import colour_net

    weights = tmp_path / "w.pt"
    torch.save(colour_net().state_dict(), weights)
    cfg = light(toy_data, tmp_path / "run", model={**toy_config(toy_data, "x")["model"], "weights": str(weights)})
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    net = colour_net()
    with torch.no_grad():
        net.features[0].bias.fill_(-0.2)
    torch.save(net.state_dict(), weights)
    with pytest.raises(ConfigError, match="model weights_sha256 changed"):
        run(cfg, cfg.out, progress=False, resume=True)


@pytest.mark.parametrize("extra", [["--set", "labels.top_k=1"], ["--limit", "4"], ["--out", "elsewhere"]])
def test_resume_with_overrides_refuses(toy_data, tmp_path, capsys, extra):
    cfg = light(toy_data, tmp_path / "run")
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    assert main(["run", "--resume", str(cfg.out), "--quiet", *extra]) == 2
    assert f"{extra[0]} cannot change it" in one_line(capsys)


# ---- 3. progress is recounted at the end ----------------------------------------------------
def test_resume_after_a_kill_right_after_the_last_commit_counts_every_part(toy_data, tmp_path):
    cfg = light(toy_data, tmp_path / "run", batch_size=6)
    run(cfg, cfg.out, progress=False)
    # What a SIGKILL after the last commit but before the throttled flush leaves behind.
    man = read_manifest(cfg.out)
    man["status"] = "running"
    man["progress"].update(done_samples=6, done_parts=1)
    write_manifest(cfg.out, man)
    run(cfg, cfg.out, progress=False, resume=True)
    prog = RunReader(cfg.out).manifest["progress"]
    assert (prog["done_samples"], prog["done_parts"]) == (12, 2)


# ---- 7. silent wrong results ----------------------------------------------------------------
def test_nan_from_the_model_fails_with_one_line_naming_the_part(toy_data, tmp_path, capsys):
    path = light_file(toy_data, tmp_path, tmp_path / "run")
    assert main(["run", "--config", str(path), "--set", "model.factory=test_runner_reliability:nan_net", "--set", "model.fast_forward=off",
                 "--quiet"]) == 2
    err = one_line(capsys)
    assert "part 1" in err and "NaN" in err and "s004" in err
    r = RunReader(tmp_path / "run")
    assert r.status == "failed" and r.parts() == [0]  # the good part is kept


# ---- 8. one line instead of a traceback ------------------------------------------------------
def test_disk_full_while_writing_a_part(toy_data, tmp_path, monkeypatch, capsys):
    from xai_core.summary import writer

    cfg_path = light_file(toy_data, tmp_path, tmp_path / "run")
    real, calls = writer._write_group, []

    def full(tmp, images, saliency, *extra):
        calls.append(tmp)
        if len(calls) == 2:
            tmp.mkdir(parents=True, exist_ok=True)
            (tmp / "partial").write_bytes(b"x")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "partial"))
        return real(tmp, images, saliency, *extra)

    monkeypatch.setattr(writer, "_write_group", full)
    assert main(["run", "--config", str(cfg_path), "--quiet"]) == 2
    err = one_line(capsys)
    assert "no space left" in err and "part 1" in err
    out = tmp_path / "run"
    r = RunReader(out)
    assert r.status == "failed" and r.parts() == [0]
    assert not list((out / "arrays").glob(".*tmp*"))  # no stale temporary left


def test_stale_temporaries_are_removed_on_resume(toy_data, tmp_path):
    cfg = light(toy_data, tmp_path / "run")
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    junk = Path(cfg.out) / "arrays" / ".part-000001.zarr.tmp-99999"
    junk.mkdir()
    (Path(cfg.out) / "tables" / "samples" / ".part-000001.parquet.abc.tmp").write_bytes(b"x")
    run(cfg, cfg.out, progress=False, resume=True)
    assert not junk.exists() and not list(Path(cfg.out).rglob("*.tmp*"))


def test_out_is_a_file(toy_data, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["run", "--config", str(light_file(toy_data, tmp_path, f)), "--quiet"]) == 2
    assert "is a file" in one_line(capsys)


def test_read_only_output(toy_data, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        # root ignores mode bits; /proc is a real read-only-for-files location for everyone.
        out = Path("/proc/xai-core-test-run")
    else:
        ro.chmod(0o555)
        out = ro / "run"
    try:
        assert main(["run", "--config", str(light_file(toy_data, tmp_path, out)), "--quiet"]) == 2
    finally:
        ro.chmod(0o755)
    assert "cannot be created" in one_line(capsys)


@pytest.mark.parametrize("override, message", [
    ("batch_size=1.7", "batch_size is 1.7; expected an integer"),
    ("batch_size=true", "batch_size is True; expected an integer"),
    ("labels.top_k=x", "labels.top_k is 'x'; expected an integer"),
    ("model.input_size=[64]", "model.input_size is (64,); expected a list of 2 integers or an integer"),
    ("labels.threshold=yes", "labels.threshold is True; expected a number"),
    ("seed=[1]", "seed is [1]; expected an integer"),
])
def test_config_values_are_type_checked(toy_data, tmp_path, capsys, override, message):
    path = light_file(toy_data, tmp_path, tmp_path / "run")
    assert main(["run", "--config", str(path), "--set", override, "--quiet"]) == 2
    assert message in one_line(capsys)


def test_limit_zero_is_refused(toy_data, tmp_path, capsys):
    path = light_file(toy_data, tmp_path, tmp_path / "run")
    assert main(["run", "--config", str(path), "--limit", "0", "--quiet"]) == 2
    assert "dataset.limit is 0" in one_line(capsys)


def test_model_factory_raising(toy_data, tmp_path, capsys):
    path = light_file(toy_data, tmp_path, tmp_path / "run")
    assert main(["run", "--config", str(path), "--set", "model.factory=test_runner_reliability:broken_factory",
                 "--quiet"]) == 2
    err = one_line(capsys)
    assert "broken_factory" in err and "weights missing" in err


def broken_factory():
    raise RuntimeError("weights missing\nsecond line")


def test_model_forward_raising_mid_run(toy_data, tmp_path, capsys):
    path = light_file(toy_data, tmp_path, tmp_path / "run")
    assert main(["run", "--config", str(path), "--set", "model.factory=test_runner_reliability:flaky_net", "--set", "model.fast_forward=off",
                 "--quiet"]) == 2
    err = one_line(capsys)
    assert "part 1" in err and "illegal memory access" in err
    assert RunReader(tmp_path / "run").parts() == [0]


def test_ctrl_c_is_one_line_and_resumable(toy_data, tmp_path):
    out, hold = tmp_path / "run", tmp_path / "hold"
    hold.touch()
    proc = start_slow_runner(toy_data, tmp_path, out, until=lambda: any((out / "tables" / "samples").glob("part-*.parquet")),
                             hold=hold)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    hold.unlink()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    r = RunReader(out)
    assert r.status == "interrupted" and "--resume" in r.manifest["error"]
    assert not (out / LOCK).exists()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert RunReader(out).status == "complete" and len(RunReader(out).samples()) == 12


# ---- 9. file modes and durability ------------------------------------------------------------
def test_files_are_written_world_readable(toy_data, tmp_path):
    old = os.umask(0o022)
    try:
        cfg = light(toy_data, tmp_path / "run")
        run(cfg, cfg.out, progress=False)
    finally:
        os.umask(old)
    out = Path(cfg.out)
    for f in [out / "manifest.json", *out.glob("tables/*/*.parquet"), *out.glob("arrays/**/zarr.json")]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_chunks_are_fsynced_before_the_samples_commit(toy_data, tmp_path, monkeypatch):
    from xai_core.summary import format as fmt
    from xai_core.summary import writer

    events = []
    real_fsync, real_atomic = os.fsync, fmt.atomic_write_bytes

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", path))
        return real_fsync(fd)

    def atomic(path, data):
        events.append(("commit", str(path)))
        return real_atomic(path, data)

    monkeypatch.setattr(writer.os, "fsync", fsync)
    monkeypatch.setattr(writer, "atomic_write_bytes", atomic)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    cols = {"sample_index": [0, 1]}
    writer.write_part(tmp_path, 0, samples=cols, labels={"sample_index": []}, scores={"sample_index": []},
                      images=images, saliency={"g": np.ones((2, 8, 8), np.float32)})
    chunk_syncs = [i for i, (k, p) in enumerate(events) if k == "fsync" and "/c/" in p]
    commit = [i for i, (k, p) in enumerate(events) if k == "commit" and "/samples/" in p]
    assert chunk_syncs and commit and max(chunk_syncs) < commit[0]


def test_plugin_parameters_refuse_booleans_for_numbers(toy_data, tmp_path, capsys):
    path = light_file(toy_data, tmp_path, tmp_path / "run")
    assert main(["run", "--config", str(path), "--quiet", "--set",
                 "explainers=[{type: integrated_gradients, params: {steps: true}}]"]) == 2
    assert "parameter 'steps' is True" in one_line(capsys)


def test_inspect_verify_finds_a_damaged_chunk(toy_data, tmp_path, capsys):
    cfg = light(toy_data, tmp_path / "run")
    run(cfg, cfg.out, progress=False)
    assert main(["inspect", str(cfg.out), "--verify"]) == 0
    assert "verified the manifest and 3 parts" in capsys.readouterr().out
    victim = [f for f in sorted((Path(cfg.out) / "arrays" / "part-000002.zarr" / "images").rglob("*")) if "/c/" in str(f) and f.is_file()][-1]
    victim.write_bytes(victim.read_bytes()[:-1])
    assert main(["inspect", str(cfg.out), "--verify"]) == 2
    err = one_line(capsys)
    assert "part 2, array 'images'" in err and "checksum" in err


def test_sigkill_after_the_last_samples_commit_then_resume_ends_complete(toy_data, tmp_path):
    """Killed right after the last part's samples table (the commit) and before ``complete``:
    every part is on disk but the manifest says "running"; ``--resume`` finishes the run."""
    path = light_file(toy_data, tmp_path, tmp_path / "run", batch_size=6)  # 12 images: 2 parts
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run([sys.executable, str(TESTS / "kill_at_commit.py"), "2", "samples", "0", "--", "run",
                          "--config", str(path), "--quiet"], env=env, cwd=TESTS, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == -signal.SIGKILL, res.stderr
    out = tmp_path / "run"
    killed = RunReader(out)
    assert killed.status == "running" and killed.parts() == [0, 1]
    info = run_info(tmp_path, out)  # the dashboard: not a complete-looking run at work
    assert info.stale and "--resume" in info.status_text
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert not run_info(tmp_path, out).stale
    done = RunReader(out)
    assert done.status == "complete" and done.parts() == [0, 1]
    prog = done.manifest["progress"]
    assert (prog["done_samples"], prog["done_parts"]) == (12, 2) and done.manifest.get("finished")
    ref = light(toy_data, tmp_path / "ref", batch_size=6)
    run(ref, ref.out, progress=False)
    assert done.table("scores").sort_values(["sample_index", "label", "explainer", "metric"]).reset_index(drop=True) \
        .equals(RunReader(ref.out).table("scores").sort_values(["sample_index", "label", "explainer", "metric"])
                .reset_index(drop=True))
