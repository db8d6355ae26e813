"""Counterfactual page: the hierarchical-occlusion windows that keep a label, layer by layer."""

import streamlit as st

from pages._common import active_run, refresh_while_running, remember, require_frame, restore
from xai_core.dashboard import counterfactual as CF
from xai_core.dashboard import fields as F
from xai_core.dashboard import query as Q
from xai_core.errors import XaiError
from xai_core.labels import TAGS

require_frame(__file__)
run = active_run()
t, store = run.tables, run.store
st.title("Counterfactuals")
st.caption(f"run `{run.info.name}` · {t.images_text} · the smallest windows of each image that, pasted into "
           "a blurred copy, keep the model's label (hierarchical occlusion: each layer halves the window side)")
refresh_while_running(run)

if (why := CF.availability(t)) is not None:
    st.info(why)
    st.stop()


@st.cache_resource(max_entries=64, show_spinner=False)
def _strip(_t, _store, run_key, pos: int, label: int) -> CF.Strip:
    # Cached per (run version, image, label): the composites are rebuilt with torch.
    part, offset = int(_t.scol("part")[pos]), int(_t.scol("offset")[pos])
    return CF.strip(_t, _store.image(part, offset), pos, label)


# ---- filters -------------------------------------------------------------------------------
FIELDS = F.counterfactual_fields(t)
restore(FIELDS)
c_lab, c_tag, c_hide = st.columns([3, 3, 2], vertical_alignment="bottom")
labels = c_lab.multiselect("Labels", Q.present_labels(t), format_func=t.class_name, key="cf_labels",
                           placeholder="every label", help="the labels explained in this run")
tags = c_tag.pills("Tags", TAGS, selection_mode="multi", key="cf_tags",
                   help="none selected: every tag; a click shows only that tag")
hide = c_hide.toggle("Hide images without a result", key="cf_hide",
                     help="list only images with a counterfactual for a label passing the filters")
positions = CF.select_images(t, CF.CounterfactualFilter(tuple(labels), F.effective_tags(tags), hide))
st.markdown(f"**{len(positions)}** of {t.n_samples} images listed",
            help="an image is listed when any of its labels passes every filter")
if not len(positions):
    st.info("No image matches these filters.")
    st.stop()

ids, n_results = t.scol("sample_id"), CF.result_counts(t).tolist()
listed = [int(p) for p in positions]
if st.session_state.get("cf_image") not in listed:
    st.session_state["cf_image"] = listed[0]
c_img, c_sel = st.columns([2, 3])
pos = c_img.selectbox("Image", listed, key="cf_image",
                      format_func=lambda p: f"{ids[p]} · {n_results[p] or 'no'} label{'s' * (n_results[p] != 1)} with a result")
remember(FIELDS, hidden=("cf_image",) if pos == listed[0] else ())  # the first image is the default
with_result = CF.labels_with_result(t, pos)
if not with_result:
    st.info(f"Image {ids[pos]} has no counterfactual: none of its labels reached the threshold, or the blurred "
            "image alone keeps them.")
    st.stop()
label = c_sel.segmented_control("Label", with_result, default=with_result[0], key=f"cf_label_{pos}",
                                format_func=t.class_name)
if label is None:
    label = with_result[0]

# ---- the strip -----------------------------------------------------------------------------
try:
    s = _strip(t, store, (str(run.info.path), run.stamp), pos, int(label))
except XaiError as e:
    st.error(str(e))
    st.stop()
cols = st.columns(max(4, len(s.layers) + 1))  # at least 4: a two-layer strip stays a strip, not a poster
cols[0].image(s.original, caption=f"original · {s.name} p = {s.prob:.3f}", width="stretch")
for col, layer in zip(cols[1:], s.layers):
    col.image(layer.picture, caption=layer.caption, width="stretch")

frame = s.frame()
c_chart, c_table = st.columns([3, 2])
c_chart.markdown(f"**p({s.name}) per layer** (0 = original image)")
c_chart.line_chart(frame, x="layer", y="probability", height=220)
c_table.dataframe(CF.frame_text(frame), hide_index=True, width="stretch")
