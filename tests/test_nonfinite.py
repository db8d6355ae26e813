"""Non-finite model outputs (issue 19 item 1): ±inf logits on the dataset's images stop the run
with one line; NaN on some perturbed inputs only is counted per explainer and metric, stored as
each spoiled score's ``nan_reason`` and summarised by ``xai-core inspect`` — or, with
``strict: true``, stops the run with one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from toy import colour_net, toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError
from xai_core.inspect import inspect_run
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel
from xai_core.runner import run
from xai_core.summary import RunReader

LIGHT = dict(batch_size=6, explainers=["gradient", "random"],
             metrics=[{"type": "deletion_auc", "params": {"steps": 4}}, "pointing_game"])


def config(toy_data, out, factory: str, **over) -> dict:
    cfg = toy_config(toy_data, out, **{**LIGHT, **over})
    cfg["model"].update(factory=factory, fast_forward="off")
    return cfg


def config_file(toy_data, tmp_path, factory: str, **over):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config(toy_data, tmp_path / "run", factory, **over)))
    return path


def test_infinite_logits_stop_the_run_with_one_line(toy_data, tmp_path, capsys):
    """±inf logits give probabilities of exactly 0 and 1: the check looks at the logits."""
    assert main(["run", "--config", str(config_file(toy_data, tmp_path, "toy:inf_colour_net")), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "part 0" in err and "infinite logits" in err and "s001" in err
    assert RunReader(tmp_path / "run").status == "failed"


def test_nan_on_perturbed_inputs_is_stored_with_its_reason(toy_data, tmp_path, capsys):
    cfg = config_from_dict(config(toy_data, tmp_path / "run", "toy:standardising_colour_net"))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "complete"
    sc = r.scores()
    deletion, pointing = sc[sc["metric"] == "deletion_auc"], sc[sc["metric"] == "pointing_game"]
    # the last deletion step is a constant image, on which the model returns NaN
    assert deletion["raw"].isna().all() and deletion["nan_reason"].notna().all()
    assert deletion["nan_reason"].str.fullmatch(
        r"the model returned non-finite outputs on \d+ of \d+ passes \(metric deletion_auc of (gradient|random)\)").all()
    # a score that does not apply has no reason; the model's fine on what pointing game needs
    assert pointing["nan_reason"].isna().all()
    assert pointing["raw"].notna().any() and pointing["raw"].isna().any()  # labels without a box: n/a
    # each part's commit record says which evaluations saw non-finite outputs
    from xai_core.summary.integrity import commit_record

    seen = commit_record(cfg.out, 0)["backend"]["nonfinite"]
    assert set(seen) == {"metric deletion_auc of gradient", "metric deletion_auc of random"}
    bad, passes = seen["metric deletion_auc of gradient"]
    assert 0 < bad < passes

    # the dashboard says why, instead of the "—" of a score that does not apply
    from xai_core.dashboard import RunTables
    from xai_core.dashboard import assessment as A
    from xai_core.dashboard import detail as D

    t = RunTables.load(cfg.out)
    pos = int(np.flatnonzero(t.samples["sample_id"].to_numpy() == "s001")[0])
    d = D.sample_detail(t, pos)
    names = {m.name: m.score_name for m in A.metric_infos(t)}
    labels = sorted(set(d.scores["label_index"].tolist()) - {-1})
    pivots = [D.scores_pivot(t, d.scores, label) for label in labels]
    assert all(p.loc["gradient", names["deletion_auc"]].startswith("n/a: the model returned non-finite outputs")
               for p in pivots)
    assert any(p.loc["gradient", names["pointing_game"]] != "—" for p in pivots)
    table = A.assessment_table(t, A.explainer_metric_table(t), {"deletion_auc": 1, "pointing_game": 1})
    row = A.interval_table(table, A.metric_infos(t)).set_index(["explainer", "metric"]).loc[("gradient", names["deletion_auc"])]
    assert row["skipped"] == f"{len(deletion) // 2} ({len(deletion) // 2}: the model returned non-finite outputs)"

    info = inspect_run(cfg.out)
    assert info["model_nan"] == {"gradient": {"deletion_auc": len(deletion) // 2},
                                 "random": {"deletion_auc": len(deletion) // 2}}
    assert main(["inspect", str(cfg.out)]) == 0
    out = capsys.readouterr().out
    assert "n/a because the model returned non-finite outputs" in out and "gradient/deletion_auc" in out


def test_strict_stops_the_run_with_one_line_naming_the_part_and_metric(toy_data, tmp_path, capsys):
    path = config_file(toy_data, tmp_path, "toy:standardising_colour_net", strict=True)
    assert main(["run", "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "part 0, metric deletion_auc of gradient" in err and "strict: true" in err
    r = RunReader(tmp_path / "run")
    assert r.status == "failed" and r.parts() == []


def test_strict_must_be_a_boolean(toy_data, tmp_path):
    with pytest.raises(ConfigError, match="strict is 'yes please'; expected true or false"):
        config_from_dict(config(toy_data, tmp_path / "run", "toy:colour_net", strict="yes please"))


def test_the_handle_counts_non_finite_passes_and_resets_on_reading():
    h = ClassifierHandle(module=PixelSpaceModel(colour_net(), (0, 0, 0), (1, 1, 1)), activation="sigmoid",
                         input_size=(8, 8), num_classes=3)
    x = torch.rand(5, 3, 8, 8)
    assert h.take_nonfinite() == 0
    h.logits(x)
    h.logits(torch.full((2, 3, 8, 8), float("nan")))
    h.predict(torch.cat([x, torch.full((1, 3, 8, 8), float("inf"))]), batch_size=2)
    assert h.passes == 13 and h.take_nonfinite() == 3 and h.take_nonfinite() == 0
