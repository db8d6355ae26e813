"""Comprehensive assessment: metrics × explainers, weights, ranking, radar, CSV."""

import streamlit as st

from pages._common import active_run, refresh_while_running, require_frame
from xai_core.dashboard import assessment as A
from xai_core.dashboard.figures import radar_figure, ranking_figure
from xai_core.errors import XaiError

require_frame(__file__)
run = active_run()
t = run.tables
st.title("Comprehensive assessment")
st.caption(f"run `{run.info.name}` · {t.n_samples} images")
refresh_while_running(run)


@st.cache_data(max_entries=8, show_spinner="Aggregating scores…")
def _long(_t, run_key):
    return A.explainer_metric_table(_t)


infos = A.scored_metric_infos(t)
if not infos:
    st.info("This run has no evaluation scores; add metrics to its configuration to compare explainers.")
    st.stop()
long = _long(t, (str(run.info.path), run.stamp))

st.subheader("Metrics")
st.dataframe(A.metrics_frame(infos), hide_index=True, width="stretch")

st.subheader("Weights")
st.caption("Equal by default. The weights are normalised to sum to 1, so only their ratios matter.")
weights = {}
per_row = 4
for i in range(0, len(infos), per_row):
    cols = st.columns(per_row)
    for col, m in zip(cols, infos[i: i + per_row]):
        weights[m.name] = col.number_input(m.display_name, 0.0, 1.0, round(1.0 / len(infos), 3), 0.05,
                                           key=f"cmp_w_{m.name}", format="%.3f")
try:
    norm = A.normalise_weights(weights)
    table = A.assessment_table(t, long, weights)
except XaiError as e:
    st.error(str(e))
    st.stop()
st.caption("normalised: " + " · ".join(f"{m.display_name} {norm[m.name]:.3f}" for m in infos))

st.subheader("Scores")
st.caption("Each cell: mean [0, 1] score (higher is better) over the finite results, with its 95 % bootstrap interval "
           "and the number of results the metric skipped (did not apply). The arrow gives the direction of the raw value. "
           "Comprehensive score = Σ wᵢ · meanᵢ.")
st.dataframe(A.display_table(table, infos), hide_index=True, width="stretch", key="cmp_table")
st.download_button("Download CSV", table.to_csv(index=False).encode(), file_name=f"{run.info.name.replace('/', '_')}_assessment.csv",
                   mime="text/csv", key="cmp_csv", icon=":material/download:")

c_rank, c_radar = st.columns(2)
with c_rank:
    st.markdown("**Ranking**")
    st.plotly_chart(ranking_figure(A.comprehensive(long, weights)), key="cmp_rank", config={"displaylogo": False})
with c_radar:
    st.markdown("**Radar**")
    if len(infos) >= 3:
        st.plotly_chart(radar_figure(long, [m.name for m in infos], {m.name: m.display_name for m in infos}),
                        key="cmp_radar", config={"displaylogo": False})
    else:
        st.info("The radar chart needs at least 3 metrics.")
