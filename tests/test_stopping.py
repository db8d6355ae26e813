"""Stop when settled (xai_core/stopping.py): an early stop, resumed, equals an uninterrupted run."""

import numpy as np
import pytest

from test_runner import assert_same_run
from toy import make_dataset, toy_config
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError
from xai_core.runner import run
from xai_core.stopping import RankingWatch, StopSpec, parse_stop, part_order
from xai_core.summary import RunReader
from xai_core.summary.reader import read_manifest


def test_early_stop_then_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", n=10)
    over = dict(batch_size=2, metrics=["deletion_auc", "pointing_game", "sparseness"])
    stop = {"ranking_stable": 0.01, "min_parts": 2, "top": 2}
    run(config_from_dict(toy_config(data, tmp_path / "a", stop_when=stop, **over)), tmp_path / "a")
    m = read_manifest(tmp_path / "a")
    assert m["status"] == "interrupted" and m["error"].startswith("stopped early: ranking stability")
    assert m["stopped_early"]["parts"] == 2 and m["stopped_early"]["of_parts"] == 5
    assert m["progress"]["done_parts"] == 2
    assert "ranking stability" in capsys.readouterr().err
    run(config_from_dict(toy_config(data, tmp_path / "a", stop_when=stop, **over)), tmp_path / "a", resume=True,
        progress=False)
    assert read_manifest(tmp_path / "a")["status"] == "complete"
    run(config_from_dict(toy_config(data, tmp_path / "b", **over)), tmp_path / "b", progress=False)
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_unsettled_rankings_run_to_the_end(tmp_path):
    data = make_dataset(tmp_path / "data", n=6)
    out = run(config_from_dict(toy_config(data, tmp_path / "a", batch_size=2, metrics=["sparseness"],
                                          stop_when={"ranking_stable": 1.0, "min_parts": 6})), tmp_path / "a",
              progress=False)
    assert RunReader(out).status == "complete"


def test_stability_of_a_clear_and_of_a_tied_ranking():
    watch = RankingWatch(StopSpec(top=2, boots=50))
    n = 40
    rows = {"sample_index": [], "explainer": [], "metric": [], "score": []}
    for i in range(n):
        for e, s in (("good", 0.9), ("bad", 0.1), ("mid", 0.5)):
            rows["sample_index"].append(i), rows["explainer"].append(e), rows["metric"].append("m")
            rows["score"].append(s + 0.01 * np.sin(i))
    watch.add(rows)
    p, top = watch.stability()
    assert p == 1.0 and top == ["good", "mid"]
    tied = RankingWatch(StopSpec(top=2, boots=50))
    rng = np.random.default_rng(0)
    tied.add({**rows, "score": list(rng.uniform(0, 1, len(rows["score"])))})
    assert tied.stability()[0] < 0.9
    assert part_order([0, 1, 2, 3, 4], 0) == part_order([0, 1, 2, 3, 4], 0) != [0, 1, 2, 3, 4]


@pytest.mark.parametrize("raw", [{"ranking_stable": 1.5}, {"ranking_stable": 0}, {"when": 1}, 0.95, {"top": "x"}])
def test_bad_stop_when_is_one_line(raw):
    with pytest.raises(ConfigError) as e:
        parse_stop(raw)
    assert "stop_when" in str(e.value) and "\n" not in str(e.value)
