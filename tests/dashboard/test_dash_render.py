"""Rendering only the visible page, behind bounded caches (xai_core.dashboard.render)."""

import io

import numpy as np
from PIL import Image

import dash_runs
from xai_core.dashboard import MapStore, RunTables
from xai_core.dashboard import detail as D
from xai_core.dashboard import query as Q
from xai_core.dashboard.overlay import OverlayStyle
from xai_core.dashboard.render import LRU, detail_maps


def _page(t, size=2):
    return Q.page_view(t, Q.select(t, Q.SaliencyFilter(), Q.SortSpec()), 1, size)


def _png(b):
    return np.asarray(Image.open(io.BytesIO(b)))


def test_grid_reads_only_the_visible_page_and_caches(dash_logdir, synth_tables):
    store = MapStore(dash_logdir / dash_runs.SYNTH_RUN)
    view = _page(synth_tables)
    g = store.grid(view.rows, {}, ["a", "b"], OverlayStyle())
    assert set(g.tiles) == {(r.pos, e) for r in view.rows for e in "ab"} and not g.errors
    assert store.cache_info()["rows"] == 2 + 4  # 2 images and their 2 × 2 maps, nothing else
    misses = store.cache_info()["tile_misses"]
    again = store.grid(view.rows, {}, ["a", "b"], OverlayStyle())
    assert again.tiles == g.tiles and store.cache_info()["tile_misses"] == misses
    # the picture is upscaled so an 8-px image stays sharp (×16 → 128 px)
    assert _png(g.pictures[view.rows[0].pos]).shape == (128, 128, 3)


def test_active_label_selects_the_map(dash_logdir, synth_tables):
    store = MapStore(dash_logdir / dash_runs.SYNTH_RUN)
    row = _page(synth_tables, 5).rows[1]           # img0: cat then dog
    assert row.sample_id == "img0"
    style = OverlayStyle(overlay=False, scale="map", polarity="signed", clip_percentile=100)
    cat = store.grid([row], {row.pos: 0}, ["a"], style).tiles[(row.pos, "a")]
    dog = store.grid([row], {row.pos: 1}, ["a"], style).tiles[(row.pos, "a")]
    assert cat != dog
    np.testing.assert_array_equal(store.saliency("a", row.chip(1).part, row.chip(1).map_offset),
                                  dash_runs.synthetic_map(0, 1, "a"))


def test_overlay_toggle_changes_the_tile(dash_logdir, synth_tables):
    store = MapStore(dash_logdir / dash_runs.SYNTH_RUN)
    rows = _page(synth_tables, 1).rows
    on = store.grid(rows, {}, ["a"], OverlayStyle(overlay=True)).tiles[(rows[0].pos, "a")]
    off = store.grid(rows, {}, ["a"], OverlayStyle(overlay=False)).tiles[(rows[0].pos, "a")]
    assert not np.array_equal(_png(on), _png(off))


def test_shared_scale_across_explainers(dash_logdir, synth_tables):
    store = MapStore(dash_logdir / dash_runs.SYNTH_RUN)
    rows = _page(synth_tables, 1).rows
    per = store.grid(rows, {}, ["a", "b"], OverlayStyle(scale="explainer", clip_percentile=100)).scales
    shared = store.grid(rows, {}, ["a", "b"], OverlayStyle(scale="all", clip_percentile=100)).scales
    pos = rows[0].pos
    assert per[(pos, "b")] > 5 * per[(pos, "a")]     # "b" is 10× "a"
    assert shared[(pos, "a")] == shared[(pos, "b")] == per[(pos, "b")]


def test_missing_explainer_is_reported_per_map(dash_logdir, synth_tables):
    store = MapStore(dash_logdir / dash_runs.SYNTH_RUN)
    rows = _page(synth_tables, 1).rows
    g = store.grid(rows, {}, ["a", "nope"], OverlayStyle())
    assert g.tiles[(rows[0].pos, "a")] is not None and g.tiles[(rows[0].pos, "nope")] is None
    assert len(g.errors) == 1 and "nope" in g.errors[0]


def test_detail_maps_at_stored_resolution(dash_logdir, synth_tables):
    store = MapStore(dash_logdir / dash_runs.SYNTH_RUN)
    row = D.sample_detail(synth_tables, 0).row
    image, maps, errors = detail_maps(store, row, 1, ["a", "b"], OverlayStyle(scale="map", clip_percentile=100))
    assert image.shape == (8, 8, 3) and not errors
    np.testing.assert_array_equal(maps["b"][0], dash_runs.synthetic_map(0, 1, "b"))
    assert maps["b"][1] == np.abs(dash_runs.synthetic_map(0, 1, "b")).max()


def test_lru_is_bounded():
    lru = LRU(2)
    for k in range(5):
        lru.get(k, lambda k=k: k * k)
    assert len(lru) == 2 and lru.get(4, lambda: None) == 16 and lru.hits == 1


def test_runner_run_renders_every_explainer(dash_logdir):
    t = RunTables.load(dash_logdir / dash_runs.RUNNER_RUN, root=dash_logdir)
    assert set(t.labels["tag"]) == {"TP", "FP", "FN", "TN"}
    # the file's tag dictionary starts with TN here: counts must still be per tag
    assert Q.tag_counts(t, Q.SaliencyFilter()) == t.labels["tag"].astype(str).value_counts().to_dict()
    assert set(t.pair_slices) == {(e, m["name"]) for e in t.explainers for m in t.metrics}
    store = MapStore(dash_logdir / dash_runs.RUNNER_RUN)
    view = Q.page_view(t, Q.select(t, Q.SaliencyFilter(), Q.SortSpec()), 1, 12)
    g = store.grid(view.rows, {}, t.explainers, OverlayStyle())
    assert len(view.rows) == 12 and not g.errors and all(v is not None for v in g.tiles.values())


def test_box_labels_scale_with_the_picture():
    """Issue 18: the photos' "tabby" label was PIL's 10 px bitmap font on a 448 px picture."""
    from xai_core.dashboard.render import BOX_RGB, _with_boxes, label_font_px

    def text_height(side, scale):
        out = _with_boxes(np.zeros((side, side, 3), np.uint8), [("tabby", 10, 10, side // scale - 10, side // scale - 10)],
                          scale, None)
        inside = (out[:, 30:] == BOX_RGB).all(-1)[: side // 3]      # right of the box's left edge, top third
        rows = np.flatnonzero(inside[:, :side // 3].any(1))
        rows = rows[rows > 10 * scale + 3]                          # below the box's top edge
        return rows.max() - rows.min() + 1

    assert label_font_px(448) == 20 and label_font_px(128) == 11
    assert text_height(448, 2) >= 12 and text_height(448, 2) > text_height(160, 1)
