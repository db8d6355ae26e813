"""Comprehensive assessment: weights and tags, ranking and radar, metrics × explainers, CSV."""

import streamlit as st

from pages._common import active_run, axiom_banner, refresh_while_running, remember, require_frame, restore
from pages._report import report_buttons
from xai_core.dashboard import assessment as A
from xai_core.dashboard import fields as F
from xai_core.dashboard import notes as N
from xai_core.dashboard.figures import radar_figure, ranking_figure
from xai_core.errors import XaiError
from xai_core.labels import TAGS

require_frame(__file__)
run = active_run()
t = run.tables
st.title("Comprehensive assessment")
st.caption(f"run `{run.info.name}` · {t.images_text}")
refresh_while_running(run)


@st.cache_data(max_entries=16, show_spinner="Aggregating scores…")
def _long(_t, run_key, rows_filter):
    return A.explainer_metric_table(_t, rows_filter=rows_filter)


infos = A.scored_metric_infos(t)
if not infos:
    st.info("This run has no evaluation scores; add metrics to its configuration to compare explainers.")
    st.stop()
FIELDS = F.comprehensive_fields(t)
restore(FIELDS)

c_w, c_tags = st.columns([3, 1])
with c_w:
    st.markdown("**Weights**", help="Equal by default; any value ≥ 0. They are normalised to sum to 1, so only their "
                                    "ratios matter.")
    weights = {}
    per_row = min(4, len(infos))
    for i in range(0, len(infos), per_row):
        cols = st.columns(per_row)
        for col, m in zip(cols, infos[i: i + per_row]):
            weights[m.name] = col.number_input(m.score_name, min_value=0.0, step=0.25, key=f"cmp_w_{m.name}",
                                               format="%.2f", help=f"{m.description} Raw value: {m.direction}; "
                                                                   f"score = {m.mapping} of it.".lstrip())
with c_tags:
    tags = st.pills("Tags counted", TAGS, selection_mode="multi", key="cmp_tags",
                    help="Which (image, label) results are averaged; none selected: every tag")
    loc = st.pills("Localisation: tags", TAGS, selection_mode="multi", key="cmp_loc_tags",
                   help="Localisation metrics (is the map on the label's object?) count TP labels by default: an "
                        "FN label's object is one the model did not recognise. None selected: every tag")
rows_filter = A.RowFilter(tuple(tags), tuple(loc))
long = _long(t, (str(run.info.path), run.stamp), rows_filter)
warnings = N.axiom_warnings(t)
axiom_banner(warnings)
try:
    norm = A.normalise_weights(weights)
    table = A.assessment_table(t, long, weights, axioms=N.axiom_column(warnings, t.explainers) if warnings else None)
except XaiError as e:
    remember(FIELDS)
    st.error(str(e))
    st.stop()
st.caption("normalised: " + " · ".join(f"{m.score_name} {norm[m.name]:.3f}" for m in infos)
           + f" · counted: {rows_filter.text}")
flags = A.flags(t, long)
flagged = {f.metric for f in flags if f.metric}
if flagged:  # one line here (the ranking stays above the fold at 1440 × 900); the reasons under Scores
    st.caption(":orange[⚠ uninformative on this run: " + ", ".join(m.score_name for m in infos if m.name in flagged)
               + " (why: under Scores)]")

c_rank, c_radar = st.columns(2)
with c_rank:
    st.markdown("**Ranking**")
    comp = A.comprehensive(long, weights)
    st.plotly_chart(ranking_figure(comp, labels=N.marked(comp["explainer"], warnings)), key="cmp_rank",
                    config={"displaylogo": False})
with c_radar:
    st.markdown("**Radar**")
    if len(infos) >= 3:
        st.plotly_chart(radar_figure(long, [m.name for m in infos], {m.name: m.score_name for m in infos}),
                        key="cmp_radar", config={"displaylogo": False})
    else:
        st.info("The radar chart needs at least 3 metrics.")

c_head, c_values = st.columns([3, 2], vertical_alignment="bottom")
c_head.subheader("Scores")
values = c_values.segmented_control("Show", A.VALUES, key="cmp_values", required=True,
                                    format_func={"score": "[0, 1] scores", "raw": "raw values"}.get,
                                    help="the [0, 1] scores the ranking weighs, or the mean raw values in each metric's "
                                         "own units and direction (a Deletion AUC of 0.023 scores 0.977)") or "score"
remember(FIELDS)
if flags:
    st.warning("\n".join(f"- {f.text}" for f in flags), icon=":material/warning:")
if values == "score":
    st.caption("Mean [0, 1] score per metric (higher is better) over the finite results (— where none); a name with a "
               "formula is a mapping of the raw value x (Metrics, below). Comprehensive score = Σ wᵢ · meanᵢ.")
else:
    st.caption("Mean raw value per metric, in its own units: each header says which direction is better; the "
               "comprehensive score stays the weighted [0, 1] score.")
shown = A.display_table(table, infos, values=values, flagged=flagged)
numbers = [c for c in shown.columns if shown[c].dtype.kind == "f"]
with st.container(key="cmp_scores"):
    # A static table: its headers wrap at spaces, so 7 explainers × 8 metrics and the sanity
    # verdict fit a 1440 px screen without a horizontal scroll bar (issue 12).
    st.table(shown.set_index("rank").style.format("{:.3f}", subset=numbers, na_rep=A.MISSING))
st.download_button("Download CSV (with the weights used)", table.to_csv(index=False).encode(),
                   file_name=f"{run.info.name.replace('/', '_')}_assessment.csv", mime="text/csv", key="cmp_csv",
                   icon=":material/download:")
report_buttons(run, weights, rows_filter)
with st.expander("Intervals and skipped results"):
    st.caption("95 % bootstrap interval of each mean; skipped: results where the metric did not apply (e.g. "
               "localisation without a box).")
    st.dataframe(A.interval_table(table, infos), hide_index=True, width="stretch", key="cmp_intervals")
with st.expander("Metrics"):
    st.dataframe(A.metrics_frame(infos), hide_index=True, width="stretch")
