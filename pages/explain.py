"""Explain an image: upload images (or pick a sample of the active run), choose explainers and
labels, compute with the active run's model (or an uploaded ONNX file), add them to a run."""

import streamlit as st

from pages._common import active_run, logdir, require_frame, runs
from xai_core.dashboard import live as L
from xai_core.dashboard import live_inputs as I
from xai_core.dashboard import live_settings as P
from xai_core.dashboard.legend import legend
from xai_core.dashboard.overlay import DIVERGING_CMAPS, POLARITIES, SEQUENTIAL_CMAPS, OverlayStyle, scale_values
from xai_core.dashboard.render import detail_pictures
from xai_core.errors import XaiError

require_frame(__file__)
st.title("Explain an image")
run = active_run(require=False)
LIM = I.LIMITS
st.caption(f"Up to {LIM.max_images} PNG or JPEG images per request, {LIM.max_image_bytes >> 20} MB and "
           f"{LIM.max_pixels:,} pixels each; at most {LIM.max_passes:,} model passes per image and label; no new "
           f"image is started after {LIM.max_seconds:.0f} s.")
MODELS_DIR = logdir() / L.SCRATCH / ".models"   # uploaded ONNX and class files (a scratch run names them)


@st.cache_resource(max_entries=8, show_spinner=False)
def _run_model(path: str, stamp: int, name: str, _manifest: dict) -> I.LiveModel:
    return I.model_of_run(_manifest, name)


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _handle(key: str, _model: I.LiveModel):
    # Loaded once per model for the whole server (two at most), not per click or per tab.
    return L.load_handle(_model)


@st.cache_resource(max_entries=4, show_spinner="Preparing the explainers…")
def _engine(model_key: str, req: L.LiveRequest, _model: I.LiveModel, _handle):
    return L.make_engine(_model, _handle, req)


def _stop(e: XaiError):
    st.error(str(e))
    st.stop()


# ---- the model -------------------------------------------------------------------------------
sources = (["The active run's model"] if run is not None else []) + ["An ONNX file"]
source = st.radio("Model", sources, horizontal=True, key="live_source",
                  help="the active run's model is loaded from its manifest (factory, weights, TorchScript or ONNX "
                       "file, normalisation); an ONNX model takes normalised (N, C, H, W) float32 to (N, K) logits")
try:
    if source == "An ONNX file":
        c_onnx, c_cls = st.columns(2)
        up = c_onnx.file_uploader("ONNX file", type=["onnx"], key="live_onnx", max_upload_size=LIM.max_onnx_bytes >> 20)
        names = c_cls.file_uploader("Class names (.json list or .txt, one per line)", type=["json", "txt"],
                                    key="live_classes")
        if up is None or names is None:
            st.info("Upload an ONNX file and its class names.")
            st.stop()
        path = I.save_onnx(up.getvalue(), up.name, MODELS_DIR)
        classes = I.parse_classes(names.getvalue(), names.name, MODELS_DIR)
        c, h, w = I.onnx_input(path)
        c_act, c_size, c_mean, c_std = st.columns(4)
        activation = c_act.radio("Activation", ("softmax", "sigmoid"), key="live_activation", horizontal=True)
        side = c_size.number_input("Input side (px)", 8, 1024, value=h or 224, key="live_side", disabled=bool(h and w),
                                   help="read from the file when it fixes it")
        mean = c_mean.text_input("Mean per channel", ", ".join(["0"] * (c or 3)), key="live_mean")
        std = c_std.text_input("Std per channel", ", ".join(["1"] * (c or 3)), key="live_std")
        try:
            mean_v, std_v = [float(v) for v in mean.split(",")], [float(v) for v in std.split(",")]
        except ValueError:
            raise I.LiveError("mean and std are comma-separated numbers, one per channel") from None
        model = I.model_of_onnx(path, up.name, classes, input_size=(h or side, w or side), channels=c or len(mean_v),
                                activation=activation, mean=mean_v, std=std_v)
    else:
        model = _run_model(str(run.info.path), run.stamp, run.info.name, run.tables.manifest)
    handle = _handle(model.key, model)
except XaiError as e:
    _stop(e)
st.caption(f"Model: {model.label} · input {model.input_size[0]}×{model.input_size[1]} · {len(model.classes)} classes")

# ---- the images ------------------------------------------------------------------------------
kinds = ["Upload images"] + (["A sample of the active run"] if run is not None and run.tables.n_samples else [])
kind = st.radio("Images", kinds, horizontal=True, key="live_kind")
items, problems = [], []
if kind == "Upload images":
    files = st.file_uploader("PNG or JPEG", type=["png", "jpg", "jpeg"], accept_multiple_files=True, key="live_files",
                             max_upload_size=LIM.max_image_bytes >> 20)
    truth = st.expander("Ground truth of the uploads (optional: their labels are then tagged TP / FP / FN / TN)") \
        if files else None
    for k, f in enumerate((files or [])[: LIM.max_images]):
        gt = truth.multiselect(f.name, range(len(model.classes)), format_func=lambda c: model.classes[c],
                               key=f"live_gt_{k}_{f.file_id}", placeholder="no ground truth")
        try:
            items.append(L.upload_item(I.decode_upload(f.getvalue(), f.name), f.name, gt))
        except XaiError as e:
            problems.append(str(e))
    if files and len(files) > LIM.max_images:
        problems.append(f"{len(files)} images uploaded; the first {LIM.max_images} are explained")
else:
    ids = [str(s) for s in run.tables.scol("sample_id")[:1000]]
    pick = st.selectbox("Sample", range(len(ids)), format_func=lambda i: ids[i], key="live_sample",
                        help="its stored image (as the model saw it), ground truth and boxes; the first 1000")
    try:
        items.append(L.sample_item(run.tables, run.store, int(pick), run.info.name))
    except XaiError as e:
        problems.append(str(e))
for p in problems:
    st.error(p)

# ---- what to compute -------------------------------------------------------------------------
choices = {m["name"]: m for m in L.explainer_choices(model)}
manifest = run.tables.manifest if source != "An ONNX file" else None
settings = P.run_settings(manifest)  # the run's parameters are the defaults: its maps, its cost
if st.session_state.get("live_settings_of") != model.key:  # another run: its settings, not the last run's
    for k in [k for k in st.session_state if k == "live_explainers" or str(k).startswith("live_p_")]:
        del st.session_state[k]
    st.session_state["live_settings_of"] = model.key
c_exp, c_lab = st.columns([3, 2])
picked = c_exp.multiselect("Explainers", list(choices), default=P.default_explainers(model, manifest),
                           key="live_explainers", format_func=lambda n: choices[n]["display_name"])
entries = []
with c_exp.expander(f"Explainer parameters ({'the run' if settings else 'the registry'}'s settings)"):
    for name in picked:
        vals = []
        params = L.main_params(name)
        for col, (k, d) in zip(st.columns(len(params)) if params else [], params.items()):
            key, start = f"live_p_{name}_{k}", settings.get(name, {}).get(k, d)
            if isinstance(d, bool):
                v = col.checkbox(f"{name}: {k}", value=start, key=key)
            elif isinstance(d, int):
                v = int(col.number_input(f"{name}: {k}", min_value=0, value=start, step=1, key=key,
                                         help="0 = automatic, where the method says so (the value used is shown below)"))
            else:
                v = float(col.number_input(f"{name}: {k}", value=float(start), key=key, format="%.4g"))
            if v != d:
                vals.append((k, v))
        entries.append((name, tuple(vals)))
mode = c_lab.radio("Labels", ("top-k", "named"), horizontal=True, key="live_label_mode")
if mode == "top-k":
    top_k = c_lab.number_input("k", 1, min(LIM.max_labels, len(model.classes)), value=min(3, len(model.classes)),
                               key="live_top_k")
    named = ()
else:
    top_k = 1
    named = tuple(c_lab.multiselect("Classes", range(len(model.classes)), format_func=lambda c: model.classes[c],
                                    key="live_named", max_selections=LIM.max_labels))
curves = c_lab.checkbox("Deletion and insertion AUC too (model passes per map)", key="live_curves")
req = L.LiveRequest(tuple(entries), curves=curves, top_k=int(top_k), labels=named)
try:
    st.caption("At: " + P.plan_text(P.plan(model, req)) if req.explainers else "Choose at least one explainer.")
except XaiError as e:
    st.error(str(e))

with st.sidebar:
    st.subheader("Display")
    overlay = st.toggle("Overlay on image", value=True, key="live_overlay")
    opacity = st.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="live_opacity", disabled=not overlay)
    polarity = st.selectbox("Polarity", POLARITIES, key="live_polarity")
    cmaps = DIVERGING_CMAPS if polarity == "signed" else SEQUENTIAL_CMAPS
    cmap = st.selectbox("Colour map", cmaps, key=f"live_cmap_{polarity == 'signed'}")
    clip = st.slider("Clip at percentile", 90.0, 100.0, 99.5, 0.1, key="live_clip")
style = OverlayStyle(overlay=overlay, opacity=opacity, polarity=polarity, clip_percentile=clip,
                     **({"diverging_cmap": cmap} if polarity == "signed" else {"cmap": cmap}))

c_go, c_add, c_msg = st.columns([1, 1, 4], vertical_alignment="center")
if c_go.button("Explain", type="primary", key="live_go", icon=":material/play_arrow:", disabled=not items):
    try:
        L.check_request(model, req, len(items))
        engine = _engine(model.key, req, model, handle)
        bar = st.progress(0.0, text=f"explaining {len(items)} image(s)…")
        passes = st.progress(0.0, text="model passes…")
        result = L.explain_images(engine, model, req, items,
                                  on_progress=lambda d, n, sid: bar.progress(d / n, text=f"{d} of {n}: {sid}"),
                                  on_passes=lambda d, n: passes.progress(d / n, text=f"{d:,} of {n:,} model passes"))
        passes.empty()
        bar.empty()
    except XaiError as e:
        _stop(e)
    st.session_state["live_result"] = {"model": model.key, "req": req, "items": items, "result": result,
                                       "added": None}

got = st.session_state.get("live_result")
if not got or got["model"] != model.key:
    st.stop()
result, metric_names = got["result"], L.metric_names()
st.caption(f"{len(result.images)} image(s) in {result.seconds:.2f} s" + (
    f"; not started within {LIM.max_seconds:.0f} s: {', '.join(result.skipped)}" if result.skipped else ""))

# ---- add to a run ----------------------------------------------------------------------------
if c_add.button("Add to a run", key="live_add", icon=":material/playlist_add:",
                help=f"append these images to the scratch run of this model and these settings under the log "
                     f"directory ({L.scratch_run(model, got['req'])}), as a normal run: the grid and the assessments "
                     "show them"):
    try:
        engine = _engine(model.key, got["req"], model, handle)
        got["added"] = L.add_to_run(engine, model, got["req"], got["items"], logdir(), shown=got["result"].images)
        runs.clear()  # the new run is listed at once
    except XaiError as e:
        c_msg.error(str(e))
if got["added"]:
    name, parts = got["added"]
    c_msg.success(f"Added {len(parts)} image(s) to run `{name}` (part {parts[0]}{f' … {parts[-1]}' if len(parts) > 1 else ''}).")
    c_msg.page_link("pages/saliency.py", label=f"Open {name} in Saliency maps", icon=":material/image_search:",
                    query_params={"run": name})

# ---- the results, like a run's detail view --------------------------------------------------------
for i, img in enumerate(result.images):
    with st.container(border=True, key=f"live_img_{i}"):
        st.markdown(f"**{img.sample_id}**")
        labels = img.labels.set_index("label")
        label = st.segmented_control(
            "Label", list(labels.index), default=int(labels.index[0]), key=f"live_label_{i}_{len(labels)}",
            format_func=lambda l, lb=labels: f"{lb.loc[l, 'tag']} · {lb.loc[l, 'class']} {lb.loc[l, 'probability']:.3f}")
        label = int(labels.index[0]) if label is None else int(label)
        maps = {e: (e, img.maps[e][label]) for e in result.explainers}
        scales = scale_values(maps, style)
        picture, tiles = detail_pictures(img.image, {e: (m, scales[e]) for e, (_, m) in maps.items()}, style,
                                         img.boxes, highlight=labels.loc[label, "class"], target_px=192)
        cols = st.columns(1 + max(len(tiles), 3))
        cols[0].image(picture, caption="image", width="stretch")
        for col, (e, png) in zip(cols[1:], tiles.items()):
            col.image(png, caption=f"{e} · {labels.loc[label, 'class']}", width="stretch")
            lg = legend(style, [scales[e]], signed_maps=result.signed.get(e, True))
            col.image(lg.bar, width="stretch")
            col.caption(lg.ends, help=lg.text)
        c_p, c_s = st.columns([1, 2])
        c_p.markdown("**Probabilities** (top 10)")
        c_p.dataframe(L.top_probabilities(img, model.classes), hide_index=True, width="stretch",
                      column_config={"probability": st.column_config.ProgressColumn(format="%.3f", min_value=0.0,
                                                                                    max_value=1.0)})
        c_s.markdown("**Scores** ([0, 1], higher is better)")
        table = L.scores_table(img, label, metric_names)
        if len(table):
            c_s.table(table.style.format("{:.3f}", na_rep="—"))
