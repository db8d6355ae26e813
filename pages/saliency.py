"""Saliency page: filter, sort and page the images of a run; one map column per explainer."""

import streamlit as st

from pages._common import (active_run, breakable, narrow_layout, refresh_while_running, remember, require_frame,
                           restore, step_slider, stepped)
from xai_core.dashboard import detail as D
from xai_core.dashboard import fields as F
from xai_core.dashboard import query as Q
from xai_core.dashboard.assessment import metric_infos
from xai_core.dashboard.legend import legend
from xai_core.dashboard.overlay import DISPLAYS, DIVERGING_CMAPS, POLARITIES, SCALES, SEQUENTIAL_CMAPS, OverlayStyle
from xai_core.dashboard.notes import legend_note
from xai_core.dashboard.render import detail_maps, detail_pictures
from xai_core.dashboard.steps import across_steps
from xai_core.errors import XaiError
from xai_core.labels import TAGS

TAG_COLOUR = {"TP": "green", "FP": "orange", "FN": "red", "TN": "gray"}

require_frame(__file__)
run = active_run()
st.title("Saliency maps")
run = step_slider(run, "sal")  # a run of several steps: the maps of the chosen step
t, store = run.tables, run.store
st.caption(f"run `{run.info.name}` · {t.images_text} · {len(t.labels)} explained labels")
refresh_while_running(run)
FIELDS = F.saliency_fields(t)
restore(FIELDS)
choices = Q.score_choices(t)
score_names = {m.name: m.score_name for m in metric_infos(t)}
if choices and st.session_state["sal_sort_met"] not in choices.get(st.session_state["sal_sort_exp"], []):
    st.session_state["sal_sort_met"] = choices.get(st.session_state["sal_sort_exp"], [""])[0]


@st.cache_resource(max_entries=32, show_spinner=False)
def _select(_t, run_key, flt, sort):
    # Cached per (run version, filter, sort): page turns and chip clicks reuse the order.
    return Q.select(_t, flt, sort)


def _sort_changed() -> None:
    """Sorting by a localisation or faithfulness score starts with the tags it is meaningful
    for (TP) when no tag is chosen, and says so (issue 18)."""
    tags = F.sort_tags(t, st.session_state.get("sal_sort_met", "")) if st.session_state.get("sal_sort") == Q.SORT_SCORE else ()
    if tags and not st.session_state.get("sal_tags"):
        st.session_state["sal_tags"] = list(tags)
        st.session_state["sal_auto_tags"] = st.session_state["sal_sort_met"]


def _tags_changed() -> None:
    st.session_state.pop("sal_auto_tags", None)


# ---- filters and sort --------------------------------------------------------------------
with st.container(key="sal_filters"):
    c_lab, c_prob, *c_std, c_tag = st.columns([3, 2, 2, 3] if t.has_uncertainty else [3, 2, 3])
    # Applied on every pick (no form and Apply button: an unapplied choice looked applied, issue 18).
    labels = c_lab.multiselect("Labels", Q.present_labels(t), format_func=t.class_name, key="sal_labels",
                               placeholder="every label", help="the labels explained in this run")
    pmin, pmax = c_prob.slider("Probability", 0.0, 1.0, step=0.01, key="sal_prob")
    std_rng = (0.0, float("inf"))
    if c_std:  # only runs with MC-dropout uncertainty have a standard deviation per label
        lo, hi = Q.std_range(t)
        smin, smax = c_std[0].slider("Uncertainty (std)", lo, hi, step=0.005, key="sal_std", format="%.3f",
                                     help="MC-dropout standard deviation of the label's probability")
        std_rng = (smin, smax if smax < hi else float("inf"))  # the full range filters nothing
    counts = Q.tag_counts(t, Q.SaliencyFilter(tuple(labels), TAGS, pmin, pmax, *std_rng))
    tags = c_tag.pills("Tags", TAGS, selection_mode="multi", key="sal_tags", on_change=_tags_changed,
                       format_func=lambda x: f"{x} ({counts[x]})", help="None selected: every tag; a click shows only "
                       "that tag. TP: ground truth & predicted · FP: predicted only · FN: ground truth only · TN: neither "
                       "(explained as a top-k label)")
flt = Q.SaliencyFilter(tuple(labels), F.effective_tags(tags), pmin, pmax, *std_rng)

with st.container(key="sal_sorts"):
    # Only the controls the sort needs: empty columns took a 1024 px row's width (issue 18).
    by_score = st.session_state.get("sal_sort") == Q.SORT_SCORE
    c_sort, *c_score, c_dir, c_size = st.columns([2, 2, 3, 2, 1.3] if by_score else [2, 2, 1.3])
    sort_key = c_sort.selectbox("Sort by", Q.sort_options(t), key="sal_sort", on_change=_sort_changed,
                                help="an image's value is that of its best label (descending) or worst (ascending) "
                                     "among the labels passing the filters; its maps show that label")
    sort_exp = sort_met = ""
    if c_score:
        c_exp, c_met = c_score
        sort_exp = c_exp.selectbox("Explainer", list(choices), key="sal_sort_exp", on_change=_sort_changed)
        sort_met = c_met.selectbox("Metric", choices[sort_exp], key="sal_sort_met", on_change=_sort_changed,
                                   format_func=lambda m: score_names.get(m, m),
                                   help="the [0, 1] score, higher is better (its name says how it was mapped from the "
                                        "raw value): ascending lists the worst explanations first")
    descending = c_dir.radio("Order", F.ORDERS, horizontal=True, key="sal_order") == "descending"
    page_size = c_size.selectbox("Per page", F.PAGE_SIZES, key="sal_page_size")
sort = Q.SortSpec(sort_key, descending, sort_exp, sort_met)
if sort_key == Q.SORT_SCORE and st.session_state.get("sal_auto_tags") == sort_met and list(tags) == list(F.sort_tags(t, sort_met)):
    st.caption(f"Showing {', '.join(tags)} labels: {score_names.get(sort_met, sort_met)} is only meaningful where the "
               "model predicted the label and the image has it (other labels' maps explain nothing the model saw). "
               "Choose other tags above to include them.")

# ---- display options ---------------------------------------------------------------------
with st.sidebar:
    st.subheader("Display")
    explainers = st.multiselect("Explainers", t.explainers, key="sal_explainers", help="one column of maps each")
    display = st.segmented_control("Show maps as", list(DISPLAYS), format_func=DISPLAYS.get, key="sal_display", required=True,
                                   help="heat map: every pixel coloured by its value · outlines: the contour of the "
                                        "smallest region holding a share of the map's mass, drawn on the image "
                                        "(Vertex XAI's outlines)") or "heatmap"
    outlines = display == "outlines"
    overlay = st.toggle("Overlay on image", key="sal_overlay", disabled=outlines)
    opacity = st.slider("Opacity", 0.0, 1.0, step=0.05, key="sal_opacity", disabled=outlines or not overlay)
    polarity = st.selectbox("Polarity", POLARITIES, key="sal_polarity",
                            help="absolute |s| · positive max(s, 0) · negative max(−s, 0) · signed s on a diverging map "
                                 "(middle colour = 0, + raises the label's score, − lowers it)")
    if polarity == "signed":
        cmap = st.selectbox("Colour map (diverging)", DIVERGING_CMAPS, key="sal_cmap_div",
                            help="pink_green: Vertex XAI's map, + green, − pink")
    else:
        cmap = st.selectbox("Colour map", SEQUENTIAL_CMAPS, key="sal_cmap_seq",
                            help="pink_green: Vertex XAI's map (+ green; pink for the negative polarity)")
    clip_key = "sal_clip_out" if outlines else "sal_clip"
    clip_lo, clip_hi = st.slider("Clip range (percentiles of |s|)", 0.0, 100.0, step=0.1, key=clip_key,
                                 help="below the lower percentile of its own values a map is not highlighted; above the "
                                      "upper one (over the maps sharing a scale) the colour saturates. Vertex XAI's "
                                      "defaults for Integrated Gradients: 62 / 99.9 (the outlines' default)")
    mass = st.slider("Outlines enclose (% of the map's mass)", 5.0, 100.0, step=5.0, key="sal_mass",
                     disabled=not outlines)
    scale = st.radio("Colour scale", list(SCALES), format_func=SCALES.get, key="sal_scale",
                     help="shared scales keep maps comparable across images and labels; one per map does not")
    steps_scale = stepped(run) and st.toggle("Same scale at every step", key="sal_scale_steps",
                                             help="off: each step's maps get their own scale; on: the scale is shared "
                                                  "with the same images' maps at every step of the run")
try:
    style = OverlayStyle(overlay=overlay, opacity=opacity, polarity=polarity, clip_percentile=max(clip_hi, 0.1),
                         scale=scale, clip_low=min(clip_lo, max(clip_hi, 0.1)), display=display, outline_mass=mass,
                         **({"diverging_cmap": cmap} if polarity == "signed" else {"cmap": cmap}))
    sel = _select(t, (str(run.info.path), run.stamp, t.step), flt, sort)
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
remember(FIELDS, hidden=() if sort_key == Q.SORT_SCORE else ("sal_sort_exp", "sal_sort_met"),
         undrawn=("sal_clip" if outlines else "sal_clip_out",))
view = Q.page_view(t, sel, page, page_size)

# ---- the grid ----------------------------------------------------------------------------
narrow_layout()
active_labels = st.session_state.setdefault("sal_active", {})


def _activate(pos: int, label: int) -> None:
    st.session_state["sal_active"][(run.info.name, pos)] = label


def _active(row: Q.ImageRow) -> int | None:
    lab = active_labels.get((run.info.name, row.pos))
    return lab if row.chip(lab) is not None else row.default_label()


def _open_detail(pos: int, label: int | None) -> None:
    # The dialog opens on the label the row shows (issue 18: it opened on the first chip).
    st.session_state["sal_open_detail"] = (pos, label)
    st.session_state.pop(f"sal_detail_label_{pos}", None)


def _legend(col, e: str, values) -> None:
    meta = t.explainer_meta(e)
    lg = legend(style, values, signed_maps=bool(meta.get("signed", True)))
    col.image(lg.bar, width="stretch")
    col.caption(lg.ends, help=lg.text)
    note = legend_note(meta)  # e.g. the layer and token grid a CAM read on a ViT
    if note:
        col.caption(note)


@st.dialog("Image detail", width="large")
def detail(pos: int, shown: int | None) -> None:
    d = D.sample_detail(t, pos)
    before, after = D.neighbours(sel.order, pos)  # in the grid's order, across its pages
    c_info, c_prev, c_next = st.columns([6, 1, 1], vertical_alignment="center")
    c_info.markdown(f"**{d.row.sample_id}** · `{d.source}` · {d.width}×{d.height} px · ground truth: "
                    f"{', '.join(d.ground_truth) or 'none'}")
    c_prev.button("Previous", key="sal_detail_prev", icon=":material/chevron_left:", disabled=before is None,
                  on_click=_open_detail, args=(before, None), width="stretch")
    c_next.button("Next", key="sal_detail_next", icon=":material/chevron_right:", disabled=after is None,
                  on_click=_open_detail, args=(after, None), width="stretch")
    chips = {c.label: c for c in d.row.chips}
    first = shown if shown in chips else next(iter(chips), None)
    label = st.segmented_control("Label", list(chips), default=first, key=f"sal_detail_label_{pos}",
                                 format_func=lambda l: f"{chips[l].tag} · {chips[l].text}")
    if label is None:
        label = first
    image, maps, errors = detail_maps(store, d.row, label, t.explainers, style)
    for err in errors:
        st.warning(err)
    # Pictures, drawn at once; one interactive heatmap only on request (plotly's first chart
    # took the browser 16–36 s, issue 12). One row of columns per three pictures, each with
    # room for a colour bar, so the rows line up (issue 18: the image had none and its column
    # sat higher).
    picture, pngs = detail_pictures(image, maps, style, d.boxes, highlight=chips[label].name)
    items = [("image", picture)] + list(pngs.items())
    for i in range(0, len(items), 3):
        cols = st.columns(3)
        for col, (e, png) in zip(cols, items[i: i + 3]):
            with col:
                if e == "image":
                    st.image(png, caption="image · ground-truth boxes" if d.boxes else "image", width="stretch")
                    continue
                extra = D.detail_text(t, pos, label, e)
                st.image(png, caption=" · ".join(x for x in (e, chips[label].name, extra) if x), width="stretch")
                _legend(st, e, [maps[e][1]])
    if maps and st.toggle("Inspect raw values (interactive, slower)", key="sal_detail_interactive"):
        from xai_core.dashboard.figures import heatmap_figure

        e = st.selectbox("Explainer", list(maps), key="sal_detail_explainer")
        m, v = maps[e]
        st.plotly_chart(heatmap_figure(m, v, style, image=image, boxes=d.boxes, highlight=chips[label].name, title=e),
                        key=f"sal_detail_fig_{pos}", config={"displaylogo": False})
    table = D.scores_pivot(t, d.scores, label)
    if len(table):
        st.markdown(f"**Scores of this image for {chips[label].name}** ([0, 1], higher is better; the raw value in "
                    "brackets where the score maps it; — where the metric does not apply)")
        with st.container(key="sal_detail_scores"):
            st.table(table)


grid = store.grid(view.rows, {r.pos: _active(r) for r in view.rows}, explainers, style,
                  scales=across_steps(t, style) if steps_scale else None)
for err in grid.errors:
    st.warning(err)
# Image and labels keep a fixed share of the width however many explainers are shown; fewer
# than four map columns leave a spacer rather than stretch the tiles.
n_exp = max(len(explainers), 4)
widths = [0.12, 0.18] + [0.70 / n_exp] * len(explainers) + ([0.70 * (n_exp - len(explainers)) / n_exp]
                                                              if len(explainers) < n_exp else [])
with st.container(key="sal_head", border=True):  # bordered like the rows, so the columns line up
    head = st.columns(widths, vertical_alignment="bottom", gap="xsmall")
head[0].markdown("**image**")
head[1].markdown("**labels**")
for i, e in enumerate(explainers):
    with head[2 + i].container(key=f"sal_legend_{i}"):
        st.markdown(f"**{breakable(e)}**")
        _legend(st, e, [v for (p, ee), v in grid.scales.items() if ee == e])
for r in view.rows:
    act = _active(r)
    with st.container(key=f"sal_row_{r.pos}", border=True):
        cols = st.columns(widths, vertical_alignment="top", gap="xsmall")
        if r.pos in grid.pictures:
            cols[0].image(grid.pictures[r.pos], caption=r.sample_id, width="stretch")
        if sort.key in (Q.SORT_SCORE, Q.SORT_UNCERTAINTY):
            cols[0].caption(Q.sort_caption(t, sort, r) or f"{sort.key}: —")
        cols[0].button("Details", key=f"sal_det_{r.pos}", icon=":material/zoom_in:", width="stretch",
                       on_click=_open_detail, args=(r.pos, act))
        for c in r.chips:
            kind = "primary" if c.label == act else ("secondary" if c.passes else "tertiary")
            cols[1].button(f":{TAG_COLOUR.get(c.tag, 'gray')}-badge[{c.tag}] {c.text}", key=f"sal_chip_{r.pos}_{c.label}",
                           type=kind, on_click=_activate, args=(r.pos, c.label), width="stretch", help=c.help)
        for i, e in enumerate(explainers):
            png = grid.tiles.get((r.pos, e))
            if png is not None:
                extra = D.detail_text(t, r.pos, act, e)
                cols[2 + i].image(png, caption=f"{breakable(e)} · {t.class_name(act)}" + (f" · {extra}" if extra else ""),
                                  width="stretch")
            else:
                cols[2 + i].caption("no map")
if not view.rows:
    st.info("No image matches these filters.")
# Opened outside the row containers: a dialog called inside a column inherits its width.
if (opened := st.session_state.pop("sal_open_detail", None)) is not None:
    detail(*opened)
