"""The Python API: explain an in-memory model from a notebook, read a run back, serve the dashboard.

    import xai_core
    run = xai_core.explain(net, images, labels=[3, 7], classes=names, explainers=["gradient", "occlusion"])
    run.scores.groupby(["explainer", "metric"]).score.mean()
    run.ranking()                       # the comprehensive score of the dashboard
    run.show(run.samples.sample_id[0])  # a matplotlib figure of the image and its maps
    dash = xai_core.serve("summaries")  # the dashboard on http://127.0.0.1:8501; dash.stop()

:func:`explain` writes a normal run (the runner's own code, format, guarantees and errors) and
returns a :class:`~.runview.Run`. A second call with the same model, images and options reuses
the run (finishing it if it was interrupted); another model, other images or other options are
refused unless ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ConfigError, one_line_errors
from .runview import Run, open_run

__all__ = ["explain", "open_run", "serve", "Run", "DEFAULT_EXPLAINERS", "FORWARD_ONLY_EXPLAINERS"]

#: Explainers when ``explainers`` is None: a PyTorch module (gradients available) …
DEFAULT_EXPLAINERS = ("gradient", "integrated_gradients", "occlusion", "random")
#: … and a model answering forward passes only (ONNX, a URL).
FORWARD_ONLY_EXPLAINERS = ("occlusion", "random")
DEFAULT_METRICS = ("deletion_auc", "insertion_auc", "sparseness")
LOCALISATION_METRICS = ("pointing_game", "iosr")

_SOURCES = {"factory", "torchscript", "onnx", "url", "module", "weights", "factory_kwargs"}
_SECTIONS = ("uncertainty", "counterfactual", "sanity")
_TOP = ("sample", "batch_size", "explain_batch_size", "seed", "threads", "strict")


def explain(model, images, *, labels: Sequence | None = None, classes: Sequence[str] | None = None,
            explainers: Sequence | Mapping | None = None, metrics: Sequence | Mapping | None = None,
            activation: str = "softmax", mean: Sequence[float] | float | None = None,
            std: Sequence[float] | float | None = None, boxes: Sequence | None = None,
            masks: Sequence | None = None, ids: Sequence[str] | None = None, out: str | Path = "summaries/notebook",
            input_size: int | Sequence[int] | None = None, overwrite: bool = False, progress: bool = True,
            plan: bool = False, **options: Any) -> Run | dict:
    """Explain ``images`` with ``model`` into the run directory ``out``; returns the :class:`Run`.

    model: an ``nn.Module`` mapping normalised (N, C, H, W) float32 to (N, K) logits (it is put
        in eval mode for the run; its training mode and ``requires_grad`` flags are restored
        after), a TorchScript or ONNX file path, or the URL of a served model
        (``…/v1/models/NAME:predict``, ``…/v2/models/NAME/infer``).
    images: a list of PIL images or numpy arrays ((H, W[, C]) uint8, or floats in [0, 1]), a
        tensor batch (N, C, H, W) of pixels in [0, 1], or a ``torch.utils.data.Dataset`` of
        ``(image, label)``. Float pixels are stored, and explained, at 8 bits.
    labels: per image, the ground truth: a class index or name, a list of them, or None.
    classes: the K class names in output order, a class file (.json/.txt) or ``"imagenet"``; None: ``"0"`` … ``"K-1"`` (K from a probe pass;
        required for an ONNX file or a URL).
    explainers / metrics: names, ``{type, name, params}`` maps as in a run configuration, or
        ``{name: params}``; None gives :data:`DEFAULT_EXPLAINERS` (:data:`FORWARD_ONLY_EXPLAINERS`
        for ONNX and URLs) and deletion/insertion AUC and sparseness, plus pointing game and IoSR
        when boxes or masks are given.
    activation, mean, std: as ``model.activation``/``mean``/``std`` in a run configuration; None:
        a named model's own (below), else 0 and 1 (pixels as they are).
    A named model: ``"timm:NAME"`` (``weights=`` a .safetensors or state-dict file; other
        ``factory_kwargs=`` passed to ``timm.create_model``, never a download) or a local
        transformers ``from_pretrained`` directory. Unset ``classes``, ``input_size``, ``mean``
        and ``std`` then come from the model (timm's ``resolve_data_config`` and ImageNet names,
        the directory's ``id2label`` and ``preprocessor_config.json``), recorded in the run.
    boxes: per image, ``[(label, [x_min, y_min, x_max, y_max]), …]`` in the image's pixels;
        masks: per image, an (H, W) label map (0 background, 1 + class index) or a True/False
        mask of its one ground-truth label; ids: per image, a unique id (default its position).
    input_size: (H, W) the images are resized to (``resize="stretch"`` or ``"center_crop"``);
        None: the images' own size, which they must then share.
    out / overwrite: the run directory; an existing run of another call is refused unless
        ``overwrite``. progress: the progress bar.
    options: the rest of a run configuration — ``top_k``, ``threshold`` (labels), ``resize``,
        ``batch_size``, ``explain_batch_size``, ``seed``, ``threads``, ``strict``, ``uncertainty``/``counterfactual``/
        ``sanity`` (True or a map of their keys), and ``model`` keys (``channels``,
        ``fast_forward``, ``outputs``, ``timeout`` …).
    plan: print the run's plan (model passes, predicted seconds: :mod:`xai_core.plan`) and
        return it as a dict; nothing is computed beyond its probe and nothing is written.

    Bad input raises the runner's one-line :class:`~xai_core.errors.XaiError` (``XAI_DEBUG=1``
    keeps the chained traceback).
    """
    with one_line_errors():
        return _explain(model, images, labels=labels, classes=classes, explainers=explainers, metrics=metrics,
                        activation=activation, mean=mean, std=std, boxes=boxes, masks=masks, ids=ids, out=out,
                        input_size=input_size, overwrite=overwrite, progress=progress, plan=plan, options=options)


def serve(logdir: str | Path = "summaries", *, port: int = 8501, host: str = "127.0.0.1", timeout: float = 90.0):
    """Start the dashboard on ``host:port`` for the runs under ``logdir`` (in a subprocess) and
    return a :class:`~xai_core.dashboard_server.Dashboard` once it answers: ``.url``,
    ``.stop()`` (also at interpreter exit, or as a context manager). ``port=0`` picks a free one."""
    from .dashboard_server import start_dashboard

    with one_line_errors():
        return start_dashboard(logdir, port=port, host=host, timeout=timeout)


def _explain(model, images, *, labels, classes, explainers, metrics, activation, mean, std, boxes, masks, ids, out,
             input_size, overwrite, progress, options, plan=False) -> Run | dict:
    from .config import config_from_dict
    from .data.memory import MemoryDataset, as_items
    from .runner import run

    source, network = _model_source(model)
    items = as_items(images, labels=labels, boxes=boxes, masks=masks, ids=ids)
    named = None
    if source.get("timm") or source.get("hf"):
        from .models.named import named_defaults

        if options.get("weights"):
            source["weights"] = str(Path(options.pop("weights")).expanduser().resolve())
        if options.get("factory_kwargs"):
            source["factory_kwargs"] = dict(options.pop("factory_kwargs"))
        named = named_defaults(source)
        if classes is None:  # the model's names ("imagenet": the bundled list), else "0" … "K-1"
            classes = named["classes"] or [str(i) for i in range(named["num_classes"])]
    mean = mean if mean is not None or named else (0.0, 0.0, 0.0)
    std = std if std is not None or named else (1.0, 1.0, 1.0)
    if classes is None:
        classes = _probe_classes(network, source, mean, input_size, items, options.get("output"))
    elif isinstance(classes, (str, Path)):  # a class file, or a bundled list ("imagenet")
        from .data.classes import resolve_classes

        classes = resolve_classes(str(classes))
    classes = [str(c) for c in classes]
    dataset = MemoryDataset(classes, items)
    if input_size is None and not (named and named.get("input_size")):  # a named model's own size otherwise
        sizes = set(dataset.sizes)
        if len(sizes) > 1:
            first = dataset.sizes[0]
            k = next(i for i, s in enumerate(dataset.sizes) if s != first)
            raise ConfigError(f"images[{k}] is {dataset.sizes[k][0]}×{dataset.sizes[k][1]} pixels but images[0] is "
                              f"{first[0]}×{first[1]}; pass input_size=(H, W) to resize them all "
                              "(resize='stretch' or 'center_crop'), or images of one size")
        input_size = list(dataset.sizes[0])
    forward_only = bool(source.get("onnx") or source.get("url"))
    if explainers is None:
        explainers = FORWARD_ONLY_EXPLAINERS if forward_only else DEFAULT_EXPLAINERS
    if metrics is None:
        metrics = DEFAULT_METRICS + (LOCALISATION_METRICS if boxes is not None or masks is not None else ())
    raw = _raw_config(source, classes, explainers, metrics, activation, mean, std, input_size, out, options)
    cfg = config_from_dict(raw)
    out = Path(cfg.out)
    if plan:
        with _borrowed(network):
            return run(cfg, out, progress=progress, network=network, dataset=dataset, plan_only=True)
    if not overwrite and _same_call_done(out, cfg, dataset, network):
        return Run(out)
    resume = not overwrite and (out / "manifest.json").is_file()
    with _borrowed(network):
        run(cfg, out, resume=resume, overwrite=overwrite, progress=progress, network=network, dataset=dataset)
    return Run(out)


def _model_source(model) -> tuple[dict, Any]:
    """(model section keys naming the source, the in-memory module or None)."""
    from torch import nn

    if isinstance(model, nn.Module):
        cls = type(model)
        return {"module": f"{cls.__module__}.{cls.__qualname__}"}, model
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.startswith(("http://", "https://")):
            return {"url": text}, None
        if text.startswith("timm:"):
            return {"timm": text[len("timm:"):]}, None
        if Path(text).expanduser().is_dir():
            return {"hf": str(Path(text).expanduser().resolve())}, None
        from .models.onnx import file_kind

        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"model {text!r} is not a file; expected an nn.Module, a TorchScript or ONNX file, "
                              "or the URL of a served model")
        return ({"onnx": str(path)} if file_kind(path) == "onnx" else {"torchscript": str(path)}), None
    raise ConfigError(f"model is {type(model).__name__}; expected an nn.Module, a TorchScript or ONNX file path, "
                      "or the URL of a served model")


def _probe_classes(network, source: dict, mean, input_size, items, output=None) -> list[str]:
    """"0" … "K-1" from one forward pass of a PyTorch model (module or TorchScript), its logits
    picked from a dict/tuple/object output by the rule the runner applies (``model.output``)."""
    import torch

    if network is None and source.get("torchscript"):
        from .models.loading import ModelSpec, load_network

        network = load_network(ModelSpec(torchscript=source["torchscript"]))
    if network is None:
        raise ConfigError("classes= is required for a model given as an ONNX file or a URL (the class names, in "
                          "output order)")
    from .data.memory import to_rgb_array

    h, w = (input_size, input_size) if isinstance(input_size, int) else (input_size or to_rgb_array(items[0].image,
                                                                                                    "images[0]").shape[:2])
    from .models.loading import guess_channels

    channels = 1 if isinstance(mean, (list, tuple)) and len(mean) == 1 else guess_channels(network)
    was = network.training
    try:
        with torch.no_grad():
            out = network.eval()(torch.zeros(1, channels, int(h), int(w)))
    except Exception as e:  # the user's network: one line
        raise ConfigError(f"model failed on a (1, {channels}, {h}, {w}) probe input to count its classes "
                          f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                          "pass classes= (and input_size=)") from e
    finally:
        network.train(was)
    from .errors import ModelError
    from .models.outputs import choose_output, describe_output, pick

    try:
        out = pick(out, choose_output(out, output, where="the model").selector)
    except ModelError as e:
        raise ConfigError(f"{e} (to count its classes; or pass classes=)") from e
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ConfigError(f"model returned {describe_output(out)} for a probe input; expected (N, K) logits "
                          "(pass classes= and, for a tuple or dict output, the output= option)")
    return [str(i) for i in range(int(out.shape[1]))]


def _plugins(value, what: str) -> list:
    if isinstance(value, str):
        raise ConfigError(f"{what} is the string {value!r}; expected a list of names, e.g. [{value!r}]")
    if isinstance(value, Mapping):
        return [{"type": k, "params": dict(v or {})} for k, v in value.items()]
    return [dict(v) if isinstance(v, Mapping) else v for v in value]


def _raw_config(source, classes, explainers, metrics, activation, mean, std, input_size, out, options) -> dict:
    from .labels import LabelPolicy
    from .models.loading import ModelSpec

    model_keys = {f.name for f in dataclasses.fields(ModelSpec)} - _SOURCES
    label_keys = {f.name for f in dataclasses.fields(LabelPolicy)}
    scalar = lambda v: [float(v)] if isinstance(v, (int, float)) else [float(x) for x in v]  # noqa: E731
    raw: dict = {
        "model": {**source, "activation": activation,
                  **({} if input_size is None else
                     {"input_size": input_size if isinstance(input_size, int) else list(input_size)})},
        "dataset": {"kind": "memory", "classes": list(classes)},
        "explainers": _plugins(explainers, "explainers"),
        "metrics": _plugins(metrics, "metrics"),
        "labels": {},
        "out": str(Path(out).expanduser().resolve()),
    }
    for key, value in (("mean", mean), ("std", std)):  # None: a named model's own
        if value is not None:
            raw["model"][key] = scalar(value)
    for key, value in options.items():
        if key in model_keys:
            raw["model"][key] = value
        elif key in label_keys:
            raw["labels"][key] = value
        elif key == "resize":
            raw["dataset"]["resize"] = value
        elif key in _TOP:
            raw[key] = value
        elif key in _SECTIONS:
            raw[key] = {"enabled": bool(value)} if isinstance(value, bool) else {"enabled": True, **dict(value)}
        else:
            known = sorted(model_keys | label_keys | {"resize", *_TOP, *_SECTIONS})
            raise ConfigError(f"explain(): unknown option {key!r}; expected one of {known}")
    return raw


def _plain(obj):
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def _same_call_done(out: Path, cfg, dataset, network) -> bool:
    """True when ``out`` holds a complete run of this very call; ConfigError when it holds a run
    of another call (configuration, images or model); False when there is none, or it is to be
    finished (the runner's resume checks the identities again)."""
    from .models.loading import model_identity
    from .summary.reader import read_manifest

    if not (out / "manifest.json").is_file():
        return False
    m = read_manifest(out)
    then, now = _plain(m.get("config") or {}), _plain(cfg.to_dict())
    # keys added since (issue 24) read as their defaults in a run written before them
    for key, default in (("sample", {"TP": "all", "FP": "all", "FN": "all", "TN": "all"}), ("budget", None),
                         ("stop_when", None)):
        then.setdefault(key, default)
    if isinstance(then.get("sanity"), dict):
        then["sanity"].setdefault("steps", 16)
    diff = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
    ds_then, ds_now = m.get("dataset") or {}, dataset.identity()
    if ds_then.get("sha256") != ds_now["sha256"] or ds_then.get("n_items") != ds_now["n_items"]:
        diff.append("images")
    ident = model_identity(cfg.model, network)
    keys = [k for k in ("module_sha256", "torchscript_sha256", "onnx_sha256", "url") if k in ident]
    if any((m.get("model") or {}).get(k) != ident[k] for k in keys):
        diff.append("model weights")
    if diff:
        raise ConfigError(f"{out} holds a run of another call (its {', '.join(dict.fromkeys(diff))} differ); pass "
                          "overwrite=True to replace it, or another out=")
    return m.get("status") == "complete"


@contextmanager
def _borrowed(network):
    """The run puts the module in eval mode and freezes its parameters; give it back as it was."""
    if network is None:
        yield
        return
    modes = [(m, m.training) for m in network.modules()]
    grads = [(p, p.requires_grad) for p in network.parameters()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)
