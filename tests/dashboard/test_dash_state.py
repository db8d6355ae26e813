"""Page state ⇄ URL query parameters (xai_core.dashboard.state) and the pages' fields."""

import math

import pytest

from xai_core.dashboard import fields as F
from xai_core.dashboard.state import Field, encode, resolve
from xai_core.labels import TAGS

FIELDS = [
    Field("tags", [], "strs", TAGS),
    Field("labels", [], "ints", (0, 1, 2)),
    Field("sort", "probability", "str", ("probability", "score")),
    Field("size", 12, "int", (12, 24)),
    Field("opacity", 0.5, "float", lo=0.0, hi=1.0),
    Field("weight", 1.0, "float", lo=0.0),
    Field("prob", (0.0, 1.0), "range", lo=0.0, hi=1.0),
    Field("overlay", True, "bool"),
    Field("explainers", ["a", "b"], "strs", ("a", "b", "c")),
]
BY = {f.key: f for f in FIELDS}


def test_only_non_defaults_go_to_the_url_and_come_back():
    values = {"tags": ["FN"], "labels": [2, 0], "sort": "score", "size": 12, "opacity": 0.75, "weight": 2.5,
              "prob": (0.25, 1.0), "overlay": False, "explainers": []}
    url = encode(FIELDS, values)
    assert url == {"tags": ["FN"], "labels": ["2", "0"], "sort": ["score"], "opacity": ["0.75"], "weight": ["2.5"],
                   "prob": ["0.25", "1"], "overlay": ["0"], "explainers": [""]}
    back = {k: BY[k].from_url(v) for k, v in url.items()}
    assert back == {**{k: v for k, v in values.items() if k in url}, "prob": (0.25, 1.0)}
    assert encode(FIELDS, {f.key: f.default for f in FIELDS}) == {}


@pytest.mark.parametrize("key, raw", [("tags", ["XX"]), ("labels", ["7"]), ("labels", ["x"]), ("sort", ["id; drop"]),
                                      ("size", ["13"]), ("opacity", ["1.5"]), ("opacity", ["nan"]), ("weight", ["-1"]),
                                      ("prob", ["0.9", "0.1"]), ("prob", ["0.5"]), ("overlay", ["maybe"]),
                                      ("tags", ["TP", "TP"]), ("explainers", ["z"])])
def test_a_url_value_that_does_not_fit_is_ignored(key, raw):
    assert BY[key].from_url(raw) is None
    assert resolve(BY[key], url=raw) == BY[key].default


def test_resolve_order_live_then_url_then_session_copy_then_default():
    f = BY["sort"]
    assert resolve(f, "score", True, ["probability"], "probability", True) == "score"      # the page's own rerun
    assert resolve(f, None, False, ["score"], "probability", True) == "score"              # reload / shared link
    assert resolve(f, None, False, [], "score", True) == "score"                            # back from another page
    assert resolve(f, None, False, [], None, False) == "probability"
    # a stale value (another run's explainer) falls through to the next source
    assert resolve(BY["explainers"], ["z"], True, ["c"], None, False) == ["c"]
    assert resolve(BY["explainers"], None, False, [], ["z"], True) == ["a", "b"]
    assert resolve(BY["weight"], None, False, ["1e9"]) == 1e9 and math.isinf(BY["weight"].hi)


def test_page_fields_follow_the_run(synth_tables):
    sal = {f.key: f for f in F.saliency_fields(synth_tables)}
    assert sal["sal_labels"].choices == (0, 1, 2) and sal["sal_tags"].default == []
    assert sal["sal_explainers"].default == ["a", "b"] and sal["sal_sort"].from_url(["score"]) == "score"
    assert sal["sal_sort"].from_url(["uncertainty"]) is None           # this run has no uncertainty
    assert "sal_std" not in sal
    cmp = {f.key: f for f in F.comprehensive_fields(synth_tables)}
    assert cmp["cmp_w_m1"].default == 1.0 and cmp["cmp_w_m1"].from_url(["5"]) == 5.0   # weights are not capped at 1
    assert cmp["cmp_loc_tags"].default == ["TP"]
    cls = {f.key: f for f in F.classification_fields(synth_tables, ["cat", "dog"], ["dog"])}
    assert cls["cls_classes"].from_url(["bird"]) is None and cls["cls_classes"].default == ["dog"]
    assert F.effective_tags([]) == TAGS and F.effective_tags(["FN"]) == ("FN",)


def test_preload_runs_once_in_the_background():
    import sys

    from xai_core.dashboard import preload

    th = preload()
    assert th is preload() and th.daemon
    th.join(timeout=300)
    assert not th.is_alive() and "plotly.graph_objects" in sys.modules and "torch" in sys.modules


# ---- issue 18: defaults that follow the run ---------------------------------------------------
def test_default_explainers_are_all_up_to_six_else_the_best_ranked(synth_tables):
    from dataclasses import replace

    from xai_core.dashboard import assessment as A
    from xai_core.dashboard import fields as F

    assert F.default_explainers(synth_tables) == ["a", "b"]
    # eight explainers (a and b, and six unscored copies): the six best, in run order
    extra = [{"name": f"z{i}", "type": "z"} for i in range(6)]
    many = replace(synth_tables, manifest={**synth_tables.manifest, "explainers": synth_tables.manifest["explainers"] + extra})
    ranked = A.quick_ranking(many)
    assert ranked[:2] == ["b", "a"] and F.default_explainers(many) == ["a", "b", "z0", "z1", "z2", "z3"]
    field = next(f for f in F.saliency_fields(many) if f.key == "sal_explainers")
    assert field.default == F.default_explainers(many)


def test_a_faithfulness_or_localisation_sort_starts_with_tp(synth_tables):
    from xai_core.dashboard import fields as F

    # m1 is a faithfulness metric, m3 a localisation one, m2 label-agnostic robustness
    assert F.sort_tags(synth_tables, "m1") == ("TP",) and F.sort_tags(synth_tables, "m3") == ("TP",)
    assert F.sort_tags(synth_tables, "m2") == () and F.sort_tags(synth_tables, "nope") == ()


def test_vertex_display_fields_have_their_own_defaults(synth_tables):
    from xai_core.dashboard import fields as F

    fields = {f.key: f for f in F.saliency_fields(synth_tables)}
    assert fields["sal_display"].default == "heatmap" and fields["sal_display"].choices == ("heatmap", "outlines")
    assert fields["sal_clip"].default == (0.0, 99.5) and fields["sal_clip_out"].default == (62.0, 99.9)
    assert fields["sal_clip"].from_url(["99"]) is None        # an old one-value link is ignored, not an error
    assert fields["sal_clip_out"].from_url(["50", "99"]) == (50.0, 99.0)
