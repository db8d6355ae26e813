"""Scores over steps: per explainer × metric a line with its bootstrap band, tags over steps,
the images that changed tag, and the images whose maps changed most between two steps."""

import streamlit as st

from pages._common import active_run, refresh_while_running, require_frame
from xai_core.dashboard import steps as S
from xai_core.errors import XaiError

require_frame(__file__)
run = active_run()
t = run.tables
st.title("Scores over steps")
st.caption(f"run `{run.info.name}` · {t.n_samples} images · steps {', '.join(map(str, t.steps))}")
refresh_while_running(run)


@st.cache_data(max_entries=8, show_spinner="Aggregating the steps…")
def _summary(_t, run_key):
    return S.steps_summary(_t)


@st.cache_data(max_entries=16, show_spinner="Comparing the maps…")
def _changes(_t, run_key, a, b, explainer):
    by = S.step_tables(_t)
    return S.map_changes(by[a], by[b], explainer), S.tag_changes(by[a], by[b])


@st.cache_data(max_entries=16, show_spinner=False)
def _pictures(_t, run_key, a, b, explainer, n):
    by = S.step_tables(_t)
    return S.changed_pictures(by[a], by[b], S.map_changes(by[a], by[b], explainer), explainer, n=n)


if len(t.steps) < 2:
    st.info("This run holds one step. A run written while a model trains (xai_core.Monitor, or the Lightning and "
            "Hugging Face callbacks of xai_core.integrations) holds one per logged step.")
    st.stop()
key = (str(run.info.path), run.stamp)
try:
    summ = _summary(t, key)
except XaiError as e:
    st.error(str(e))
    st.stop()
st.subheader("Scores")
st.plotly_chart(S.scores_figure(summ.scores, summ.score_names), key="steps_scores", config={"displaylogo": False})
st.caption("Mean [0, 1] score (higher is better) of each explainer at each step; the band is its 95 % bootstrap "
           "interval over the probe images.")
st.subheader("Tags over steps")
st.line_chart(summ.tags)
st.dataframe(summ.tags, width="stretch")

st.subheader("What changed between two steps")
c_a, c_b, c_e = st.columns(3)
a = c_a.selectbox("From step", t.steps, index=0, key="steps_a")
b = c_b.selectbox("To step", t.steps, index=len(t.steps) - 1, key="steps_b")
explainer = c_e.selectbox("Explainer", t.explainers, key="steps_explainer")
try:
    moved, tags = _changes(t, key, a, b, explainer)
except XaiError as e:
    st.error(str(e))
    st.stop()
st.markdown(f"**Images sorted by how much their {explainer} map changed** (total-variation distance of the maps' "
            "normalised |s|: 0 the same, 1 disjoint)")
st.dataframe(moved.drop(columns=["pos"]), width="stretch", hide_index=True, key="steps_moved")
n_show = st.slider("Show the most changed", 0, min(12, len(moved)), min(4, len(moved)), key="steps_n") if len(moved) else 0
for caption, picture, tile_a, tile_b in _pictures(t, key, a, b, explainer, n_show):
    cols = st.columns(3)
    cols[0].image(picture, caption=caption, width="stretch")
    cols[1].image(tile_a, caption=f"{explainer} · step {a}", width="stretch")
    cols[2].image(tile_b, caption=f"{explainer} · step {b}", width="stretch")
st.markdown(f"**{len(tags)} labels changed tag** from step {a} to step {b}")
st.dataframe(tags, width="stretch", hide_index=True, key="steps_tags")
