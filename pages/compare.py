"""Compare runs: the active run (A) against another (B) over the same samples, matched by id."""

import streamlit as st

from pages._common import active_run, logdir, open_named, remember, require_frame, restore, runs, step_slider, stepped
from xai_core.dashboard import compare as C
from xai_core.dashboard import compare_view as V
from xai_core.dashboard.assessment import RowFilter
from xai_core.dashboard.overlay import OverlayStyle
from xai_core.errors import XaiError
from xai_core.labels import TAGS

require_frame(__file__)
run = active_run()
st.title("Compare runs")


@st.cache_data(ttl=60, max_entries=256, show_spinner=False)
def _dataset_key(path: str, updated) -> tuple:
    return C.dataset_key(path)


# Runs over the same dataset first: the default run B is the likeliest to share samples with A.
mine = _dataset_key(str(run.info.path), run.info.updated)
others = [r.name for r in sorted((r for r in runs(str(logdir())) if r.readable and r.name != run.info.name),
                                 key=lambda r: _dataset_key(str(r.path), r.updated) != mine)]
if stepped(run):  # two steps of one run (a model while it trained) compare like two runs
    others.insert(0, run.info.name)
if not others:
    st.info("The log directory holds no other run to compare with. Compare two runs over the same images: two "
            "checkpoints, two models, or one model with other explainer settings (another `--out`).")
    st.stop()
B_FIELD = V.run_b_field(others)
restore([B_FIELD])
c_a, c_b = st.columns(2)
c_a.markdown(f"**A** · `{run.info.name}` · {run.info.model or 'model ?'} · {run.tables.images_text}")
with c_a:
    run = step_slider(run, "vs_a", "Step of A")
name_b = c_b.selectbox("Run B", others, key="vs_run", help="matched with A by sample id")
try:
    run_b = open_named(name_b)
    with c_b:
        run_b = step_slider(run_b, "vs_b", "Step of B")
except XaiError as e:
    st.error(str(e))
    st.stop()
c_b.caption(f"{run_b.info.model or 'model ?'} · {run_b.tables.images_text}")


def _named(r) -> str:
    return f"{r.info.name} @ step {r.tables.step}" if stepped(r) else r.info.name


@st.cache_resource(max_entries=8, show_spinner="Matching the samples…")
def _compare(_a, _b, key):
    return C.compare(_a.tables, _b.tables, _named(_a), _named(_b))


@st.cache_data(max_entries=32, show_spinner="Bootstrapping the differences…")
def _diffs(_cmp, key, pairs, rows_filter):
    return C.score_differences(_cmp, pairs, rows_filter=rows_filter)


key = (str(run.info.path), run.stamp, run.tables.step, str(run_b.info.path), run_b.stamp, run_b.tables.step)
try:
    cmp = _compare(run, run_b, key)
except XaiError as e:  # no common samples: one line, nothing else
    st.error(str(e))
    remember([B_FIELD])
    st.stop()
st.caption(cmp.summary())
diff = C.config_diff(run.tables.manifest, run_b.tables.manifest)
with st.expander(f"Configuration: {len(diff)} setting{'s' if len(diff) != 1 else ''} differ between A and B"):
    if len(diff):
        st.dataframe(diff, hide_index=True, width="stretch")
    else:
        st.caption("The same configuration.")
FIELDS = V.compare_fields(cmp)
restore(FIELDS)

# ---- predictions -------------------------------------------------------------------------------
st.subheader("Predictions")
c_tr, c_cls = st.columns([3, 2])
with c_tr:
    st.markdown("**Tags of the same labels**", help="rows: the tag in A; columns: the tag in B. A label one run did "
                "not explain is TN there (neither ground truth nor predicted)")
    st.table(C.transitions(cmp))
with c_cls:
    st.markdown("**Classification**", help="over the common samples; each run's own tag rules (threshold, top-k)")
    st.table(C.classification_frame(cmp).style.format("{:.3f}"))

c1, c2, c3, c4 = st.columns([2, 2, 3, 2], vertical_alignment="bottom")
tags_a = c1.pills("Tag in A", C.TAG_CHOICES, selection_mode="multi", key="vs_tags_a", help="none selected: any tag")
tags_b = c2.pills("Tag in B", C.TAG_CHOICES, selection_mode="multi", key="vs_tags_b", help="none selected: any tag")
labels = c3.multiselect("Labels", sorted(set(cmp.rows["label"].tolist())), format_func=cmp.a.class_name,
                        key="vs_labels", placeholder="every label")
changed = c4.toggle("Only where the tags differ", key="vs_changed")
flt = C.RowsFilter(tuple(tags_a), tuple(tags_b), tuple(labels), changed)
rows = C.filter_rows(cmp, flt)
st.markdown(f"**{len(rows)}** of {len(cmp.rows)} labels · {flt.text}")
st.dataframe(C.rows_frame(rows), hide_index=True, width="stretch", height=min(36 + 35 * len(rows), 280),
             key="vs_table", column_config={c: st.column_config.NumberColumn(format="%.3f")
                                            for c in ("p A", "p B", "Δp (B − A)")})

# ---- maps side by side -------------------------------------------------------------------------
st.subheader("Maps side by side")
shown = rows if len(rows) else C.filter_rows(cmp, C.RowsFilter(changed_only=False))
shown = shown.iloc[:500]
keys = [V.row_key(r) for _, r in shown.iterrows()]
ROW_FIELD = V.row_field(keys)
restore([ROW_FIELD])
by_key = dict(zip(keys, range(len(keys))))
c_row, c_ea, c_eb = st.columns([3, 2, 2])
picked = c_row.selectbox("Label", keys, key="vs_row", format_func=lambda k: C.row_caption(shown.iloc[by_key[k]]),
                         help="the rows of the table above (every label when it is empty), first 500")
exp_a = c_ea.selectbox("Explainer in A", cmp.a.explainers, key="vs_exp_a")
exp_b = c_eb.selectbox("Explainer in B", cmp.b.explainers, key="vs_exp_b")
c_ov, c_pol, c_clip = st.columns(3)
overlay = c_ov.toggle("Overlay on image", key="vs_overlay")
polarity = c_pol.selectbox("Polarity", ("absolute", "positive", "negative", "signed"), key="vs_polarity")
clip = c_clip.slider("Clip at percentile", 90.0, 100.0, step=0.1, key="vs_clip")
style = OverlayStyle(overlay=overlay, polarity=polarity, clip_percentile=clip, scale="all")
if picked is not None:
    row = shown.iloc[by_key[picked]]
    try:
        pair = V.side_by_side(cmp, run.store, run_b.store, row, exp_a, exp_b, style)
    except XaiError as e:
        st.error(str(e))
    else:
        cols = st.columns(4)
        cols[0].image(pair.picture_a, caption=f"{row.sample_id} · ground truth boxes", width="stretch")
        for col, tile, name, e, tag in ((cols[1], pair.tile_a, "A", exp_a, row.tag_a),
                                        (cols[2], pair.tile_b, "B", exp_b, row.tag_b)):
            if tile is not None:
                col.image(tile, caption=f"{name}: {e} · {row['class']} · {tag}", width="stretch")
            else:
                col.caption(f"{name}: no map")
        with cols[3]:
            st.image(pair.legend.bar, width="stretch")
            st.caption(f"one colour scale for both maps: {pair.legend.ends}", help=pair.legend.text)
            for n in pair.notes:
                st.caption(n)

# ---- score differences -------------------------------------------------------------------------
st.subheader("Scores: B − A")
c_t, c_l = st.columns(2)
tags = c_t.pills("Tags counted (in both runs)", TAGS, selection_mode="multi", key="vs_tags",
                 help="label rows whose tag is one of these in A and in B; none selected: every tag")
loc = c_l.pills("Localisation: tags", TAGS, selection_mode="multi", key="vs_loc_tags",
                help="localisation metrics count TP labels (in both runs) by default")
remember([B_FIELD] + FIELDS + [ROW_FIELD])
st.query_params["vs_run"] = name_b  # always: the default run B depends on which runs the logdir holds
pairs = tuple(C.explainer_pairs(cmp))
if (exp_a, exp_b) not in pairs:
    pairs += ((exp_a, exp_b),)  # the maps' pair, when it is not two explainers of one name
diffs = _diffs(cmp, key, pairs, RowFilter(tuple(tags), tuple(loc)))
if not len(diffs):
    st.info("The two runs share no scored explainer × metric.")
    st.stop()
st.caption("Paired [0, 1] scores (higher is better) of the label rows both runs scored; B − A is the mean "
           "difference, its 95 % interval a bootstrap over the pairs. An interval that excludes 0 names the better "
           "run; otherwise the difference is within resampling noise.")
st.dataframe(C.differences_frame(diffs), hide_index=True, width="stretch", key="vs_diffs",
             column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("mean A", "mean B")}
             | {"B − A": st.column_config.NumberColumn(format="%+.3f")})
st.plotly_chart(V.differences_figure(diffs), key="vs_forest", config={"displaylogo": False})
