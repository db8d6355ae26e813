"""Saliency page: filter, sort and page the images of a run; one map column per explainer."""

import streamlit as st

from pages._common import active_run, refresh_while_running, remember, require_frame, restore
from xai_core.dashboard import fields as F
from xai_core.dashboard import query as Q
from xai_core.dashboard.notes import legend_note
from xai_core.dashboard.overlay import DIVERGING_CMAPS, POLARITIES, SCALES, SEQUENTIAL_CMAPS, OverlayStyle, legend
from xai_core.dashboard.render import detail_maps, detail_pictures
from xai_core.errors import XaiError
from xai_core.labels import TAGS

TAG_COLOUR = {"TP": "green", "FP": "orange", "FN": "red", "TN": "gray"}

require_frame(__file__)
run = active_run()
t, store = run.tables, run.store
st.title("Saliency maps")
st.caption(f"run `{run.info.name}` · {t.n_samples} images · {len(t.labels)} explained labels")
refresh_while_running(run)
FIELDS = F.saliency_fields(t)
restore(FIELDS)
choices = Q.score_choices(t)
if choices and st.session_state["sal_sort_met"] not in choices.get(st.session_state["sal_sort_exp"], []):
    st.session_state["sal_sort_met"] = choices.get(st.session_state["sal_sort_exp"], [""])[0]


@st.cache_resource(max_entries=32, show_spinner=False)
def _select(_t, run_key, flt, sort):
    # Cached per (run version, filter, sort): page turns and chip clicks reuse the order.
    return Q.select(_t, flt, sort)


# ---- filters and sort --------------------------------------------------------------------
c_lab, c_prob, *c_std, c_tag = st.columns([3, 2, 2, 3] if t.has_uncertainty else [3, 2, 3])
with c_lab.form("sal_labels_form", border=False, enter_to_submit=False):
    # A form: picking several labels is one rerun (Apply), not one per entry.
    labels = st.multiselect("Labels", Q.present_labels(t), format_func=t.class_name, key="sal_labels",
                            placeholder="every label", help="the labels explained in this run")
    st.form_submit_button("Apply", key="sal_labels_apply")
pmin, pmax = c_prob.slider("Probability", 0.0, 1.0, step=0.01, key="sal_prob")
std_rng = (0.0, float("inf"))
if c_std:  # only runs with MC-dropout uncertainty have a standard deviation per label
    lo, hi = Q.std_range(t)
    smin, smax = c_std[0].slider("Uncertainty (std)", lo, hi, step=0.005, key="sal_std", format="%.3f",
                                 help="MC-dropout standard deviation of the label's probability")
    std_rng = (smin, smax if smax < hi else float("inf"))  # the full range filters nothing
counts = Q.tag_counts(t, Q.SaliencyFilter(tuple(labels), TAGS, pmin, pmax, *std_rng))
tags = c_tag.pills("Tags", TAGS, selection_mode="multi", key="sal_tags",
                   format_func=lambda x: f"{x} ({counts[x]})", help="None selected: every tag; a click shows only that "
                   "tag. TP: ground truth & predicted · FP: predicted only · FN: ground truth only · TN: neither "
                   "(explained as a top-k label)")
flt = Q.SaliencyFilter(tuple(labels), F.effective_tags(tags), pmin, pmax, *std_rng)

c_sort, c_exp, c_met, c_dir, c_size = st.columns([2, 2, 2, 2, 1])
sort_key = c_sort.selectbox("Sort by", Q.sort_options(t), key="sal_sort",
                            help="an image's value is that of its best label (descending) or worst (ascending) among "
                                 "the labels passing the filters; its maps show that label")
sort_exp = sort_met = ""
if sort_key == Q.SORT_SCORE:
    sort_exp = c_exp.selectbox("Explainer", list(choices), key="sal_sort_exp")
    sort_met = c_met.selectbox("Metric", choices[sort_exp], key="sal_sort_met",
                               help="the [0, 1] score, higher is better: ascending lists the worst explanations first. "
                                    "Filter the tags (e.g. TP) so labels the model did not predict do not lead")
descending = c_dir.radio("Order", F.ORDERS, horizontal=True, key="sal_order") == "descending"
page_size = c_size.selectbox("Per page", F.PAGE_SIZES, key="sal_page_size")
sort = Q.SortSpec(sort_key, descending, sort_exp, sort_met)

# ---- display options ---------------------------------------------------------------------
with st.sidebar:
    st.subheader("Display")
    with st.form("sal_explainers_form", border=False, enter_to_submit=False):
        explainers = st.multiselect("Explainers", t.explainers, key="sal_explainers",
                                    help="one column of maps each; Apply to redraw")
        st.form_submit_button("Apply", key="sal_explainers_apply")
    overlay = st.toggle("Overlay on image", key="sal_overlay")
    opacity = st.slider("Opacity", 0.0, 1.0, step=0.05, key="sal_opacity", disabled=not overlay)
    polarity = st.selectbox("Polarity", POLARITIES, key="sal_polarity",
                            help="absolute |s| · positive max(s, 0) · negative max(−s, 0) · signed s on a diverging map "
                                 "(middle colour = 0, + raises the label's score, − lowers it)")
    if polarity == "signed":
        cmap = st.selectbox("Colour map (diverging)", DIVERGING_CMAPS, key="sal_cmap_div")
    else:
        cmap = st.selectbox("Colour map", SEQUENTIAL_CMAPS, key="sal_cmap_seq")
    clip = st.slider("Clip at percentile", 90.0, 100.0, step=0.1, key="sal_clip")
    scale = st.radio("Colour scale", list(SCALES), format_func=SCALES.get, key="sal_scale",
                     help="shared scales keep maps comparable across images and labels; one per map does not")
style = OverlayStyle(overlay=overlay, opacity=opacity, polarity=polarity, clip_percentile=clip, scale=scale,
                     **({"diverging_cmap": cmap} if polarity == "signed" else {"cmap": cmap}))

try:
    sel = _select(t, (str(run.info.path), run.stamp), flt, sort)
except XaiError as e:
    st.error(str(e))
    st.stop()

# A new filter or sort starts again at page 1 (not on a reload: the URL's page is kept).
signature = (run.info.name, flt, sort, page_size)
if st.session_state.get("sal_signature", signature) != signature:
    st.session_state["sal_page"] = 1
st.session_state["sal_signature"] = signature
n_pages = max(1, -(-sel.total // page_size))
if not 1 <= st.session_state.get("sal_page", 1) <= n_pages:
    st.session_state["sal_page"] = 1
c_count, c_pages = st.columns([1, 3], vertical_alignment="bottom")
c_count.markdown(f"**{sel.total}** of {t.n_samples} images match", help="an image matches when any of its labels passes every filter")
page = c_pages.pagination(n_pages, key="sal_page", width="stretch") if n_pages > 1 else 1
remember(FIELDS, hidden=() if sort_key == Q.SORT_SCORE else ("sal_sort_exp", "sal_sort_met"))
view = Q.page_view(t, sel, page, page_size)

# ---- the grid ----------------------------------------------------------------------------
# Chip and button labels wrap instead of ending in "…" in narrow columns (7 explainers at 1440 px).
st.html("<style>[class*='st-key-sal_chip_'] button p, [class*='st-key-sal_det_'] button p "
        "{white-space: normal; overflow-wrap: anywhere; text-overflow: clip;} "
        "[class*='st-key-sal_chip_'] button div, [class*='st-key-sal_det_'] button div {overflow: visible;} "
        # captions wrap between words (hyphenated when a word is too long), never mid-word
        "[data-testid='stImageCaption'] p {word-break: normal; overflow-wrap: normal; hyphens: auto;}</style>")
active_labels = st.session_state.setdefault("sal_active", {})


def _activate(pos: int, label: int) -> None:
    st.session_state["sal_active"][(run.info.name, pos)] = label


def _active(row: Q.ImageRow) -> int | None:
    lab = active_labels.get((run.info.name, row.pos))
    return lab if row.chip(lab) is not None else row.default_label()


def _breakable(name: str) -> str:
    """A zero-width space after each "_": long names wrap there, not mid-word."""
    return name.replace("_", "_\u200b")


def _legend(col, e: str, values) -> None:
    meta = t.explainer_meta(e)
    lg = legend(style, values, signed_maps=bool(meta.get("signed", True)))
    col.image(lg.bar, width="stretch")
    col.caption(lg.ends, help=lg.text)
    note = legend_note(meta)  # e.g. the layer and token grid a CAM read on a ViT
    if note:
        col.caption(note)


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
    # Pictures, drawn at once; one interactive heatmap only on request (plotly's first chart
    # took the browser 16–36 s, issue 12).
    picture, pngs = detail_pictures(image, maps, style, d.boxes, highlight=chips[label].name)
    cols = st.columns(3)
    cols[0].image(picture, caption="image", width="stretch")
    for i, (e, png) in enumerate(pngs.items(), start=1):
        with cols[i % 3]:
            extra = Q.detail_text(t, pos, label, e)
            st.image(png, caption=" · ".join(x for x in (e, chips[label].name, extra) if x), width="stretch")
            _legend(st, e, [maps[e][1]])
    if maps and st.toggle("Inspect raw values (interactive, slower)", key="sal_detail_interactive"):
        from xai_core.dashboard.figures import heatmap_figure

        e = st.selectbox("Explainer", list(maps), key="sal_detail_explainer")
        m, v = maps[e]
        st.plotly_chart(heatmap_figure(m, v, style, image=image, boxes=d.boxes, highlight=chips[label].name, title=e),
                        key=f"sal_detail_fig_{pos}", config={"displaylogo": False})
    if len(d.scores):
        st.markdown("**Scores of this image** ([0, 1], higher is better; — where the metric does not apply)")
        with st.container(key="sal_detail_scores"):
            st.table(Q.scores_pivot(d.scores))


grid = store.grid(view.rows, {r.pos: _active(r) for r in view.rows}, explainers, style)
for err in grid.errors:
    st.warning(err)
# Image and labels keep a fixed share of the width however many explainers are shown; fewer
# than four map columns leave a spacer rather than stretch the tiles.
n_exp = max(len(explainers), 4)
widths = [0.12, 0.18] + [0.70 / n_exp] * len(explainers) + ([0.70 * (n_exp - len(explainers)) / n_exp]
                                                              if len(explainers) < n_exp else [])
head = st.columns(widths, vertical_alignment="bottom")
head[0].markdown("**image**")
head[1].markdown("**labels**")
for i, e in enumerate(explainers):
    with head[2 + i].container(key=f"sal_legend_{i}"):
        st.markdown(f"**{_breakable(e)}**")
        _legend(st, e, [v for (p, ee), v in grid.scales.items() if ee == e])
for r in view.rows:
    with st.container(key=f"sal_row_{r.pos}", border=True):
        cols = st.columns(widths, vertical_alignment="top")
        if r.pos in grid.pictures:
            cols[0].image(grid.pictures[r.pos], caption=r.sample_id, width="stretch")
        if sort.key in (Q.SORT_SCORE, Q.SORT_UNCERTAINTY):
            cols[0].caption(Q.sort_caption(t, sort, r) or f"{sort.key}: —")
        if cols[0].button("Details", key=f"sal_det_{r.pos}", icon=":material/zoom_in:", width="stretch"):
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
                cols[2 + i].image(png, caption=f"{_breakable(e)} · {t.class_name(act)}" + (f" · {extra}" if extra else ""),
                                  width="stretch")
            else:
                cols[2 + i].caption("no map")
if not view.rows:
    st.info("No image matches these filters.")
# Opened outside the row containers: a dialog called inside a column inherits its width.
if (pos := st.session_state.pop("sal_open_detail", None)) is not None:
    detail(pos)
