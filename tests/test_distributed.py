"""Distributed runs on a real two-worker LocalCluster: same summary as the single-process run,
resume per shard, a worker dying mid-shard, and the ``--workers`` CLI path."""

import os

import numpy as np
import pandas as pd
import pytest
import yaml
from toy import ColourNet, make_dataset, toy_config

from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.distributed import dask_client, make_shards, run_distributed
from xai_core.workers import WorkerPlan, plan_workers, worker_config
from xai_core.errors import ConfigError
from xai_core.runner import run
from xai_core.summary.format import table_path
from xai_core.summary.integrity import commit_record
from xai_core.summary.reader import RunReader, read_manifest
from xai_core.summary.writer import committed_parts

N_IMAGES, BATCH = 24, 4  # six parts
KEYS = {"samples": ["sample_index"], "labels": ["sample_index", "label"],
        "scores": ["sample_index", "label", "explainer", "metric"]}


def cheap_config(data, out, **model_over) -> dict:
    """The toy configuration with cheap explainers and metrics (the test is about plumbing)."""
    cfg = toy_config(data, out, explainers=["gradient", "gradcam", "random"],
                     metrics=[{"type": "deletion_auc", "params": {"steps": 5}}, "pointing_game", "iosr"],
                     batch_size=BATCH, uncertainty={"enabled": True, "passes": 3},
                     sanity={"enabled": True, "images": 3})
    cfg["model"].update(model_over)
    return cfg


class DyingColourNet(ColourNet):
    """ColourNet that kills its own process (as an out-of-memory kill would) on the first
    forward pass after ``after`` parts of ``run_dir`` are committed, once per ``marker`` file."""

    def __init__(self, run_dir: str, marker: str, after: int):
        super().__init__()
        self.run_dir, self.marker, self.after = run_dir, marker, after

    def forward(self, x):
        if len(committed_parts(self.run_dir)) >= self.after:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)
        return super().forward(x)


def dying_colour_net(run_dir: str, marker: str, after: int):
    return DyingColourNet(run_dir, marker, after).eval()


def pid_logging_colour_net(log: str):
    """ColourNet, after appending this process's pid to ``log``: which processes loaded the model."""
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return ColourNet().eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), n=N_IMAGES)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    return run(config_from_dict(cheap_config(data, out)), out, progress=False)


@pytest.fixture(scope="module")
def scheduler():
    """The local cluster ``--workers 2`` starts, shared by the tests (starting one costs seconds)."""
    with dask_client(workers=2) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert all(a.startswith("tcp://127.0.0.1:") for a in [client.scheduler.address, *workers])
        yield client.scheduler.address


def assert_same_run(a, b, parts: int = N_IMAGES // BATCH):
    """Tables equal up to row order (scores within 1e-6), maps equal within 1e-6."""
    ra, rb = RunReader(a), RunReader(b)
    assert ra.status == rb.status == "complete"
    for name, keys in KEYS.items():
        x = ra.table(name).sort_values(keys).reset_index(drop=True)
        y = rb.table(name).sort_values(keys).reset_index(drop=True)
        assert len(x) > 0
        if name == "scores":
            for col in ("raw", "score"):
                np.testing.assert_allclose(x.pop(col), y.pop(col), rtol=0, atol=1e-6, equal_nan=True)
        pd.testing.assert_frame_equal(x, y)
    assert ra.parts() == rb.parts() == list(range(parts))
    for p in ra.parts():
        np.testing.assert_array_equal(ra._store(p)["images"][...], rb._store(p)["images"][...])
        for e in ("gradient", "gradcam", "random"):
            np.testing.assert_allclose(ra.saliency_part(e, p), rb.saliency_part(e, p), rtol=0, atol=1e-6)


def test_make_shards_covers_every_part_once_in_order():
    parts = [0, 1, 2, 5, 6, 7, 8, 9, 11, 12]
    for n_workers, shard_parts in ((2, None), (1, None), (8, None), (2, 3), (2, 100)):
        shards = make_shards(parts, n_workers, shard_parts)
        assert [p for s in shards for p in s] == parts
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert len(make_shards(parts, 2)) == 8  # 4 per worker
    assert len(make_shards(list(range(1000)), 2)) == 63  # at most 16 parts per shard
    assert make_shards([], 2) == []


def test_needs_exactly_one_of_workers_and_scheduler(data, tmp_path):
    cfg = config_from_dict(cheap_config(data, tmp_path / "x"))
    with pytest.raises(ConfigError, match="exactly one"):
        run_distributed(cfg, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="exactly one"):
        run_distributed(cfg, tmp_path / "x", workers=2, scheduler="tcp://127.0.0.1:1", progress=False)


@pytest.mark.parametrize("key,value", [("sample", {"TP": 0, "TN": 0}), ("budget", {"passes": 10_000}),
                                       ("stop_when", {"ranking_stable": 0.9})])
def test_sampling_budget_and_stopping_are_refused_in_one_line_before_anything_is_written(data, tmp_path, capsys,
                                                                                        key, value):
    # Through the CLI, as a user meets it; no cluster is started for a run that cannot go ahead.
    out = tmp_path / "run"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({**cheap_config(data, out), key: value}))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--workers", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"xai-core: error: {key} is set; a Dask run"), err
    assert "without Dask" in err and not out.exists()


def test_cli_run_on_cluster_equals_single_process(data, reference, scheduler, tmp_path):
    out = tmp_path / "run"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cheap_config(data, out)))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--scheduler", scheduler, "--quiet"]) == 0
    assert_same_run(reference, out)
    timing = read_manifest(out)["timing"]
    assert timing["workers"] == 2
    assert timing["parts_computed"] == 6 and timing["parts_skipped"] == 0
    # The same computation, split differently: the same number of images through the model.
    assert timing["model_passes"] == read_manifest(reference)["timing"]["model_passes"]
    # The sanity check runs once, on a worker, and gives the single-process verdicts.
    sanity, ref_sanity = read_manifest(out)["sanity"], read_manifest(reference)["sanity"]
    assert {e: r["passed"] for e, r in sanity.items()} == {e: r["passed"] for e, r in ref_sanity.items()}
    assert sanity["random"]["final_similarity"] == pytest.approx(ref_sanity["random"]["final_similarity"])
    # The fast-forward decision was made once (not per worker) and every part says it followed it.
    decided = read_manifest(out)["model"]["fast_forward"]
    assert decided == read_manifest(reference)["model"]["fast_forward"]  # this run makes too few passes to probe
    assert decided["backend"] == "torch" and "too few" in decided["reason"]
    assert {commit_record(out, p)["backend"]["forward"] for p in range(6)} == {"torch"}


def test_workers_follow_the_fast_forward_decision_the_driver_records(data, scheduler, tmp_path):
    out = tmp_path / "run"
    raw = cheap_config(data, out, fast_forward="on")
    raw.update(uncertainty={"enabled": False}, sanity={"enabled": False})
    raw["dataset"]["limit"] = 12
    cfg = config_from_dict(raw)
    run_distributed(cfg, out, scheduler=scheduler, progress=False, shard_parts=1)
    decided = read_manifest(out)["model"]["fast_forward"]
    assert decided["backend"] == "onnxruntime" and decided["mode"] == "on"  # recorded, where it used to be null
    assert {commit_record(out, p)["backend"]["forward"] for p in range(3)} == {"onnxruntime"}
    # A resume on the cluster follows the recorded decision and leaves it as it was.
    table_path(out, "samples", 1).unlink()
    run_distributed(cfg, out, resume=True, scheduler=scheduler, progress=False)
    assert read_manifest(out)["model"]["fast_forward"] == decided
    assert commit_record(out, 1)["backend"]["forward"] == "onnxruntime"
    # and equals the single-process run on the fast path (scores within 1e-6, as without it)
    single = tmp_path / "single"
    run(config_from_dict({**raw, "out": str(single)}), single, progress=False)
    assert_same_run(single, out, parts=3)


def test_resume_recomputes_only_missing_parts(data, reference, scheduler, tmp_path):
    out = tmp_path / "run"
    cfg = config_from_dict(cheap_config(data, out))
    run(cfg, out, progress=False, stop_after_parts=3)  # an interrupted run: parts 0–2
    stamps = {p: table_path(out, "samples", p).stat().st_mtime_ns for p in range(3)}
    decided = read_manifest(out)["model"]["fast_forward"]
    run_distributed(cfg, out, resume=True, scheduler=scheduler, progress=False, shard_parts=2)
    assert {p: table_path(out, "samples", p).stat().st_mtime_ns for p in range(3)} == stamps
    m = read_manifest(out)
    assert m["model"]["fast_forward"] == decided  # the single-process start decided; the cluster followed
    assert m["timing"]["parts_computed"] == 3
    assert m["progress"]["done_parts"] == 6 and m["progress"]["done_samples"] == N_IMAGES
    assert_same_run(reference, out)


def test_worker_dying_mid_shard_is_retried_without_recomputing_committed_parts(data, reference, scheduler, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "died"
    cfg = config_from_dict(cheap_config(data, out, factory="test_distributed:dying_colour_net",
                                        factory_kwargs={"run_dir": str(out), "marker": str(marker), "after": 2}))
    # One shard of all six parts: the worker commits parts 0 and 1, then dies in part 2.
    run_distributed(cfg, out, scheduler=scheduler, progress=False, shard_parts=6)
    assert marker.exists()
    timing = read_manifest(out)["timing"]
    assert (timing["parts_skipped"], timing["parts_computed"]) == (2, 4)
    assert_same_run(reference, out)


# ---- one worker per GPU (issue 15 item 4) ---------------------------------------------------
def test_plan_workers_gives_each_gpu_one_worker():
    cpu = plan_workers(3, [])
    assert cpu == WorkerPlan(envs=({}, {}, {})) and cpu.n_workers == 3  # no GPU: as before
    assert plan_workers(3, ["0", "1"], "cpu") == cpu  # device cpu: the GPUs are not used
    two = plan_workers(2, ["0", "1"], "auto")
    assert two.envs == ({"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}) and two.note is None
    # more workers than GPUs: one per GPU, and the user is told
    four = plan_workers(4, ["2", "3"], "cuda")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in four.envs] == ["2", "3"] and "one worker per GPU" in four.note
    # fewer workers than GPUs: the first ones (physical ids or UUIDs, as CUDA_VISIBLE_DEVICES names them)
    assert plan_workers(1, ["GPU-aa", "GPU-bb"], "auto").envs == ({"CUDA_VISIBLE_DEVICES": "GPU-aa"},)
    # cuda:K names one GPU: one worker pinned to it, which sees it as cuda:0
    one = plan_workers(3, ["4", "5", "6"], "cuda:1")
    assert one.envs == ({"CUDA_VISIBLE_DEVICES": "5"},) and one.gpus == ("5",) and "one worker on it" in one.note
    with pytest.raises(ConfigError, match="cuda:3.*2 GPU"):
        plan_workers(2, ["0", "1"], "cuda:3")
    with pytest.raises(ConfigError, match="workers is 0"):
        plan_workers(0, ["0"])


def test_worker_config_renames_an_explicit_gpu_to_the_only_one_a_pinned_worker_sees(data, tmp_path):
    import dataclasses

    cfg = config_from_dict(cheap_config(data, tmp_path / "x"))
    assert worker_config(cfg, plan_workers(2, [])) is cfg
    if not hasattr(cfg.model, "device"):  # model.device lands with issue 15 item 1
        return
    pinned = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, device="cuda:1"))
    assert worker_config(pinned, plan_workers(1, ["0", "1"], "cuda:1")).model.device == "cuda"


def test_each_worker_process_sees_its_own_gpu_and_a_run_on_them_equals_single_process(data, reference, tmp_path):
    """Two worker processes pinned to "GPUs" 0 and 1 (plain environment values here: this
    machine has none, and the model stays on the CPU): each process sees its own value, and
    a run through a --scheduler on that cluster records both and equals the one-process run."""
    out = tmp_path / "run"
    with dask_client(plan=plan_workers(2, ["0", "1"], "auto")) as client:
        seen = client.run(lambda: (os.environ.get("CUDA_VISIBLE_DEVICES"), os.getpid()))
        assert sorted(v for v, _ in seen.values()) == ["0", "1"]
        assert len({pid for _, pid in seen.values()}) == 2  # two processes
        run_distributed(config_from_dict(cheap_config(data, out)), out, scheduler=client.scheduler.address,
                        progress=False, shard_parts=1)
    timing = read_manifest(out)["timing"]
    assert timing["workers"] == 2 and set(timing["worker_gpus"]) <= {"0", "1"} and timing["worker_gpus"]
    # every worker's own device record (here the CPU each saw), with the GPU it was pinned to
    workers = read_manifest(out)["model"]["workers"]
    assert {w["cuda_visible_devices"] for w in workers} == set(timing["worker_gpus"])
    assert {w["device"]["resolved"] for w in workers} == {"cpu"} and all(w["batches"]["resolved"] == 64 for w in workers)
    assert_same_run(reference, out)


def test_the_driver_never_loads_the_model_not_even_for_the_sanity_check(data, scheduler, tmp_path):
    """A driver in front of a GPU cluster may have no GPU to load the model on: the model is
    loaded by the workers only, the sanity check included (it ran on the driver before)."""
    log = tmp_path / "loads.txt"
    out = tmp_path / "run"
    cfg = cheap_config(data, out, factory="test_distributed:pid_logging_colour_net", factory_kwargs={"log": str(log)})
    run_distributed(config_from_dict(cfg), out, scheduler=scheduler, progress=False)
    pids = {int(line) for line in log.read_text().split()}
    assert pids and os.getpid() not in pids
    man = read_manifest(out)
    assert set(man["sanity"]) == {"gradient", "gradcam", "random"} and man["status"] == "complete"
    assert man["model"]["device"]["resolved"] is None  # the driver resolved nothing: see model.workers
    assert man["model"]["workers"] and {w["device"]["resolved"] for w in man["model"]["workers"]} == {"cpu"}
