"""Saliency page: filter, sort and page the images of a run; one map column per explainer."""

import streamlit as st

from pages._common import active_run, refresh_while_running, require_frame
from xai_core.dashboard import query as Q
from xai_core.dashboard.figures import heatmap_figure, picture_figure
from xai_core.dashboard.overlay import DIVERGING_CMAPS, POLARITIES, SCALES, SEQUENTIAL_CMAPS, OverlayStyle
from xai_core.dashboard.render import detail_maps
from xai_core.errors import XaiError
from xai_core.labels import TAGS

TAG_COLOUR = {"TP": "green", "FP": "orange", "FN": "red", "TN": "gray"}
PAGE_SIZES = (12, 24, 48, 96)

require_frame(__file__)
run = active_run()
t, store = run.tables, run.store
st.title("Saliency maps")
st.caption(f"run `{run.info.name}` · {t.n_samples} images · {len(t.labels)} explained labels")
refresh_while_running(run)


@st.cache_resource(max_entries=32, show_spinner=False)
def _select(_t, run_key, flt, sort):
    # Cached per (run version, filter, sort): page turns and chip clicks reuse the order.
    return Q.select(_t, flt, sort)


# ---- filters and sort --------------------------------------------------------------------
c_lab, c_prob, *c_std, c_tag = st.columns([3, 2, 2, 3] if t.has_uncertainty else [3, 2, 3])
labels = c_lab.multiselect("Labels", list(range(len(t.classes))), format_func=t.class_name, key="sal_labels",
                           placeholder="every label")
pmin, pmax = c_prob.slider("Probability", 0.0, 1.0, (0.0, 1.0), 0.01, key="sal_prob")
std_rng = (0.0, float("inf"))
if c_std:  # only runs with MC-dropout uncertainty have a standard deviation per label
    lo, hi = Q.std_range(t)
    smin, smax = c_std[0].slider("Uncertainty (std)", lo, hi, (lo, hi), 0.005, key="sal_std", format="%.3f",
                                 help="MC-dropout standard deviation of the label's probability")
    std_rng = (smin, smax if smax < hi else float("inf"))  # the full range filters nothing
counts = Q.tag_counts(t, Q.SaliencyFilter(tuple(labels), TAGS, pmin, pmax, *std_rng))
tags = c_tag.pills("Tags", TAGS, selection_mode="multi", default=list(TAGS), key="sal_tags",
                   format_func=lambda x: f"{x} ({counts[x]})", help="TP: ground truth & predicted · FP: predicted only · "
                   "FN: ground truth only · TN: neither (explained as a top-k label)")
flt = Q.SaliencyFilter(tuple(labels), tuple(tags), pmin, pmax, *std_rng)

c_sort, c_exp, c_met, c_dir, c_size = st.columns([2, 2, 2, 2, 1])
sort_key = c_sort.selectbox("Sort by", Q.sort_options(t), key="sal_sort")
sort_exp = sort_met = ""
if sort_key == Q.SORT_SCORE:
    choices = Q.score_choices(t)
    sort_exp = c_exp.selectbox("Explainer", list(choices), key="sal_sort_exp")
    sort_met = c_met.selectbox("Metric", choices[sort_exp], key="sal_sort_met",
                               help="the [0, 1] score, higher is better: ascending lists the worst explanations first")
descending = c_dir.radio("Order", ["descending", "ascending"], horizontal=True, key="sal_order") == "descending"
page_size = c_size.selectbox("Per page", PAGE_SIZES, key="sal_page_size")
sort = Q.SortSpec(sort_key, descending, sort_exp, sort_met)

# ---- display options ---------------------------------------------------------------------
with st.sidebar:
    st.subheader("Display")
    explainers = st.multiselect("Explainers", t.explainers, default=t.explainers[:4], key="sal_explainers")
    overlay = st.toggle("Overlay on image", value=True, key="sal_overlay")
    opacity = st.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="sal_opacity", disabled=not overlay)
    polarity = st.selectbox("Polarity", POLARITIES, key="sal_polarity",
                            help="absolute |s| · positive max(s, 0) · negative max(−s, 0) · signed s on a diverging map")
    if polarity == "signed":
        cmap = st.selectbox("Colour map (diverging)", DIVERGING_CMAPS, key="sal_cmap_div")
    else:
        cmap = st.selectbox("Colour map", SEQUENTIAL_CMAPS, key="sal_cmap_seq")
    clip = st.slider("Clip at percentile", 90.0, 100.0, 99.5, 0.1, key="sal_clip")
    scale = st.radio("Colour scale", list(SCALES), format_func=SCALES.get, key="sal_scale",
                     help="shared scales keep maps comparable across images and labels; one per map does not")
style = OverlayStyle(overlay=overlay, opacity=opacity, polarity=polarity, clip_percentile=clip, scale=scale,
                     **({"diverging_cmap": cmap} if polarity == "signed" else {"cmap": cmap}))

try:
    sel = _select(t, (str(run.info.path), run.stamp), flt, sort)
except XaiError as e:
    st.error(str(e))
    st.stop()

# A new filter or sort starts again at page 1.
signature = (run.info.name, flt, sort, page_size)
if st.session_state.get("sal_signature") != signature:
    st.session_state["sal_signature"] = signature
    st.session_state["sal_page"] = 1
n_pages = max(1, -(-sel.total // page_size))
c_count, c_pages = st.columns([1, 3], vertical_alignment="bottom")
c_count.markdown(f"**{sel.total}** of {t.n_samples} images match", help="an image matches when any of its labels passes every filter")
page = c_pages.pagination(n_pages, key="sal_page", width="stretch") if n_pages > 1 else 1
view = Q.page_view(t, sel, page, page_size)

# ---- the grid ----------------------------------------------------------------------------
active_labels = st.session_state.setdefault("sal_active", {})


def _activate(pos: int, label: int) -> None:
    st.session_state["sal_active"][(run.info.name, pos)] = label


def _active(row: Q.ImageRow) -> int | None:
    lab = active_labels.get((run.info.name, row.pos))
    return lab if row.chip(lab) is not None else row.default_label()


@st.dialog("Image detail", width="large")
def detail(pos: int) -> None:
    d = Q.sample_detail(t, pos)
    st.markdown(f"**{d.row.sample_id}** · `{d.source}` · {d.width}×{d.height} px · ground truth: "
                f"{', '.join(d.ground_truth) or 'none'}")
    chips = {c.label: c for c in d.row.chips}
    label = st.segmented_control("Label", list(chips), default=_active(d.row), key=f"sal_detail_label_{pos}",
                                 format_func=lambda l: f"{chips[l].tag} · {chips[l].text}")
    if label is None:
        label = _active(d.row)
    image, maps, errors = detail_maps(store, d.row, label, t.explainers, style)
    for err in errors:
        st.warning(err)
    figs = [picture_figure(image, d.boxes, "image")] + [
        heatmap_figure(m, v, style, image=image, boxes=d.boxes, highlight=chips[label].name,
                       title=" · ".join(x for x in (e, Q.detail_text(t, pos, label, e)) if x))
        for e, (m, v) in maps.items()]
    cols = st.columns(2)
    for i, fig in enumerate(figs):
        cols[i % 2].plotly_chart(fig, key=f"sal_detail_fig_{pos}_{i}", config={"displaylogo": False})
    if len(d.scores):
        st.markdown("**Scores of this image** ([0, 1], higher is better; empty where the metric does not apply)")
        st.dataframe(d.scores.pivot_table(index=["explainer", "metric"], columns="label", values="score", sort=False),
                     width="stretch")


grid = store.grid(view.rows, {r.pos: _active(r) for r in view.rows}, explainers, style)
for err in grid.errors:
    st.warning(err)
widths = [2, 3] + [2] * len(explainers)  # the chips carry an interval: a wider labels column
head = st.columns(widths)
for col, text in zip(head, ["image", "labels"] + explainers):
    col.markdown(f"**{text}**")
for r in view.rows:
    with st.container(key=f"sal_row_{r.pos}", border=True):
        cols = st.columns(widths, vertical_alignment="top")
        if r.pos in grid.pictures:
            cols[0].image(grid.pictures[r.pos], caption=r.sample_id, width="stretch")
        if sort.key in (Q.SORT_SCORE, Q.SORT_UNCERTAINTY) and r.value == r.value:
            cols[0].caption(f"{sort.key}: {r.value:.3f}")
        if cols[0].button("Details", key=f"sal_det_{r.pos}", icon=":material/zoom_in:"):
            st.session_state["sal_open_detail"] = r.pos
        act = _active(r)
        for c in r.chips:
            kind = "primary" if c.label == act else ("secondary" if c.passes else "tertiary")
            cols[1].button(f":{TAG_COLOUR.get(c.tag, 'gray')}-badge[{c.tag}] {c.text}", key=f"sal_chip_{r.pos}_{c.label}",
                           type=kind, on_click=_activate, args=(r.pos, c.label), width="stretch", help=c.help)
        for i, e in enumerate(explainers):
            png = grid.tiles.get((r.pos, e))
            if png is not None:
                extra = Q.detail_text(t, r.pos, act, e)
                cols[2 + i].image(png, caption=f"{e} · {t.class_name(act)}" + (f" · {extra}" if extra else ""),
                                  width="stretch")
            else:
                cols[2 + i].caption("no map")
if not view.rows:
    st.info("No image matches these filters.")
# Opened outside the row containers: a dialog called inside a column inherits its width.
if (pos := st.session_state.pop("sal_open_detail", None)) is not None:
    detail(pos)
