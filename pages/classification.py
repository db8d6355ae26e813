"""Classification assessment: per-class scores, one explainer × metrics or one metric × explainers."""

import streamlit as st

from pages._common import active_run, axiom_banner, refresh_while_running, remember, require_frame, restore
from xai_core.dashboard import assessment as A
from xai_core.dashboard import fields as F
from xai_core.dashboard.notes import axiom_warnings
from xai_core.dashboard.figures import class_heatmap_figure
from xai_core.labels import TAGS

require_frame(__file__)
run = active_run()
t = run.tables
st.title("Classification assessment")
st.caption(f"run `{run.info.name}` · {t.images_text} · {len(t.classes)} classes")
refresh_while_running(run)


@st.cache_data(max_entries=16, show_spinner="Aggregating scores per class…")
def _per_class(_t, run_key, rows_filter):
    return A.per_class(_t, rows_filter)


@st.cache_data(max_entries=8, show_spinner=False)
def _counts(_t, run_key):
    return A.class_counts(_t)


infos = A.scored_metric_infos(t)
if not infos:
    st.info("This run has no evaluation scores; add metrics to its configuration to compare explainers per class.")
    st.stop()
axiom_banner(axiom_warnings(t))
key = (str(run.info.path), run.stamp)
counts = _counts(t, key)
by_count = counts[counts["explained"] > 0].sort_values("explained", ascending=False)["class"].tolist()
options = [c for c in t.classes if c in set(by_count)] or t.classes
FIELDS = F.classification_fields(t, options, by_count[:20])
restore(FIELDS)
names = {m.name: m.score_name for m in infos}

mode = st.radio("Compare", F.CLS_MODES, horizontal=True, key="cls_mode")
c1, c2, c3, c4 = st.columns([2, 3, 3, 2])
tags = c4.pills("Tags counted", TAGS, selection_mode="multi", key="cls_tags",
                help="Which (image, label) results are averaged; none selected: every tag")
loc = c4.pills("Localisation: tags", TAGS, selection_mode="multi", key="cls_loc_tags",
               help="Localisation metrics count TP labels by default; none selected: every tag")
pc = _per_class(t, key, A.RowFilter(tuple(tags), tuple(loc)))
if mode == F.CLS_MODES[0]:
    explainer = c1.selectbox("Explainer", t.explainers, key="cls_explainer")
    chosen = c2.multiselect("Metrics", [m.name for m in infos], format_func=names.get, key="cls_metrics")
    agn = [m.score_name for m in infos if m.label_agnostic]
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
    off = [m.score_name for m in infos if m.label_agnostic]
    if off:
        c1.caption(f"Not offered (label-agnostic): {', '.join(off)}.")
    chosen = c2.multiselect("Explainers", t.explainers, key="cls_explainers")
    frame = A.class_bars_frame(pc, metric=metric)
    frame, group = frame[frame["explainer"].isin(chosen)], "explainer"

classes = c3.multiselect("Classes", options, key="cls_classes",
                         help="the classes explained in this run; the 20 most explained by default")
remember(FIELDS, hidden=("cls_metric", "cls_explainers") if mode == F.CLS_MODES[0] else ("cls_explainer", "cls_metrics"))
frame = frame[frame["class"].isin(classes)]
n = dict(zip(counts["class"], counts["explained"]))
if frame.empty:
    st.info("Nothing to show: choose at least one class and one item to compare.")
else:
    st.caption("Mean [0, 1] score per class (higher is better; — where no result). n: explained (image, label) rows.")
    st.plotly_chart(class_heatmap_figure(frame, group, n, names), key="cls_bars", config={"displaylogo": False})
st.markdown("**Samples per class** (explained image × label rows, images with the class as ground truth, rows per tag)")
st.dataframe(counts[counts["class"].isin(classes)].drop(columns="label"), hide_index=True, width="stretch")
