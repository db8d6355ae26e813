"""Classification assessment: per-class scores, one explainer × metrics or one metric × explainers."""

import streamlit as st

from pages._common import active_run, refresh_while_running, require_frame
from xai_core.dashboard import assessment as A
from xai_core.dashboard.figures import class_bars_figure

require_frame(__file__)
run = active_run()
t = run.tables
st.title("Classification assessment")
st.caption(f"run `{run.info.name}` · {t.n_samples} images · {len(t.classes)} classes")
refresh_while_running(run)


@st.cache_data(max_entries=8, show_spinner="Aggregating scores per class…")
def _per_class(_t, run_key):
    return A.per_class(_t), A.class_counts(_t)


infos = A.scored_metric_infos(t)
if not infos:
    st.info("This run has no evaluation scores; add metrics to its configuration to compare explainers per class.")
    st.stop()
pc, counts = _per_class(t, (str(run.info.path), run.stamp))
names = {m.name: m.display_name for m in infos}

MODES = ("One explainer, several metrics", "One metric, several explainers")
mode = st.radio("Compare", MODES, horizontal=True, key="cls_mode")
c1, c2, c3 = st.columns([2, 3, 3])
if mode == MODES[0]:
    explainer = c1.selectbox("Explainer", t.explainers, key="cls_explainer")
    chosen = c2.multiselect("Metrics", [m.name for m in infos], default=[m.name for m in infos], format_func=names.get,
                            key="cls_metrics")
    agn = [m.display_name for m in infos if m.label_agnostic]
    if agn:
        c2.caption(f"{', '.join(agn)}: one value per image, counted under the image's predicted class.")
    frame = A.class_bars_frame(pc, explainer=explainer)
    frame, group = frame[frame["metric"].isin(chosen)], "metric"
else:
    label_metrics = [m for m in infos if not m.label_agnostic]
    if not label_metrics:
        st.info("Every metric of this run is label-agnostic; they have no per-label value to compare.")
        st.stop()
    metric = c1.selectbox("Metric", [m.name for m in label_metrics], format_func=names.get, key="cls_metric")
    off = [m.display_name for m in infos if m.label_agnostic]
    if off:
        c1.caption(f"Not offered (label-agnostic): {', '.join(off)}.")
    chosen = c2.multiselect("Explainers", t.explainers, default=t.explainers, key="cls_explainers")
    frame = A.class_bars_frame(pc, metric=metric)
    frame, group = frame[frame["explainer"].isin(chosen)], "explainer"

by_count = counts.sort_values("explained", ascending=False)["class"].tolist()
classes = c3.multiselect("Classes", t.classes, default=by_count[:20], key="cls_classes",
                         help="the 20 most explained classes by default")
frame = frame[frame["class"].isin(classes)]
n = dict(zip(counts["class"], counts["explained"]))
if frame.empty:
    st.info("Nothing to show: choose at least one class and one item to compare.")
else:
    st.plotly_chart(class_bars_figure(frame, group, n, names), key="cls_bars", config={"displaylogo": False})
st.markdown("**Samples per class** (explained image × label rows, images with the class as ground truth, rows per tag)")
st.dataframe(counts[counts["class"].isin(classes)].drop(columns="label"), hide_index=True, width="stretch")
