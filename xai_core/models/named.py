"""Models by name: ``model: {timm: NAME, weights: FILE}`` and ``model: {hf: DIR}``, with the
model's own labels and preprocessing.

* **timm**: ``timm.create_model(NAME, pretrained=False, **factory_kwargs)`` — never a download —
  then ``weights`` (a ``.safetensors`` file or a ``torch.save`` state dict) loaded into it. Its
  preprocessing is timm's ``resolve_data_config`` (input size, interpolation, mean, std,
  crop_pct); its classes, when timm's own class info says the head is an ImageNet one
  (``infer_imagenet_subset``), the bundled ImageNet-1k names or the subset's synsets, else
  "0" … "K-1".
* **transformers**: ``AutoModelForImageClassification.from_pretrained(DIR, local_files_only=True)``;
  classes from ``config.json``'s ``id2label``, preprocessing from ``preprocessor_config.json``
  (``image_mean``, ``image_std``, ``size``/``crop_size``, ``resample``), both read as JSON.

What is chosen fills only the keys the configuration leaves unset (``model.input_size``,
``mean``, ``std``, ``dataset.classes``) and is recorded as ``model.preprocessing`` (the
manifest's copy of the configuration; ``xai-core inspect`` prints it). A missing file or
directory, an unknown name or a missing library is one line (:class:`~xai_core.errors.ModelError`).
timm and transformers are imported only here, and only for such a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError

PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_BUILT: dict = {}  # the last timm network built to read its configuration, reused by the load


def _timm():
    try:
        import timm
    except ImportError as e:
        raise ModelError(f"model.timm needs timm: pip install 'xaiboard[timm]' ({e})") from e
    return timm


def build_timm(name: str, kwargs: dict | None = None):
    """``timm.create_model(name, pretrained=False, **kwargs)``; one line for an unknown name."""
    key = (name, json.dumps(kwargs or {}, sort_keys=True, default=str))
    if key in _BUILT:
        return _BUILT.pop(key)
    timm = _timm()
    try:
        return timm.create_model(name, pretrained=False, **(kwargs or {}))
    except Exception as e:  # timm raises RuntimeError("Unknown model (…)") and TypeErrors for bad kwargs
        raise ModelError(f"model.timm {name!r}: {type(e).__name__}: {(str(e).splitlines() or [''])[0]} "
                         "(see timm.list_models())") from e


def load_weights(net, path: str, what: str) -> None:
    """``path`` (.safetensors, else a ``torch.save`` state dict) into ``net``; one line when it fails."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model.weights file {str(p)!r} does not exist (nothing is downloaded)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as e:
        raise ModelError(f"model.weights {str(p)!r} could not be loaded into {what}: "
                         f"{(str(e).splitlines() or [''])[0]}") from e


def build_hf(directory: str):
    """The transformers image classifier saved in ``directory`` (``from_pretrained``, local only)."""
    d = Path(directory)
    if not (d / "config.json").is_file():
        raise ModelError(f"model.hf {str(d)!r} has no config.json; expected a local from_pretrained directory "
                         "(nothing is downloaded)")
    try:
        from transformers import AutoModelForImageClassification
    except ImportError as e:
        raise ModelError(f"model.hf needs transformers: pip install 'xaiboard[hf]' ({e})") from e
    try:
        return AutoModelForImageClassification.from_pretrained(str(d), local_files_only=True)
    except Exception as e:
        raise ModelError(f"model.hf {str(d)!r} could not be loaded: {type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0]}") from e


def _timm_defaults(name: str, kwargs: dict) -> dict:
    net = build_timm(name, kwargs)
    _BUILT.clear()
    _BUILT[(name, json.dumps(kwargs or {}, sort_keys=True, default=str))] = net
    from timm.data import ImageNetInfo, infer_imagenet_subset, resolve_data_config

    cfg = dict(resolve_data_config({}, model=net))
    pe = getattr(net, "patch_embed", None)
    fixed = getattr(pe, "img_size", None)
    if fixed is not None and not getattr(pe, "dynamic_img_size", False):
        # The pretrained config keeps its 224 px when img_size= builds the network for another size.
        fixed = (fixed, fixed) if isinstance(fixed, int) else tuple(fixed)
        cfg["input_size"] = (3, int(fixed[0]), int(fixed[1]))
    classes = None
    subset = infer_imagenet_subset(net)
    if subset:
        info = ImageNetInfo(subset)
        if info.num_classes() == getattr(net, "num_classes", None):
            # ImageNet-1k: the bundled unique names ("crane" is a bird and a machine in timm's
            # short descriptions); other subsets: their synset ids.
            classes = "imagenet" if subset == "imagenet-1k" else list(info.label_names())
    return {"source": f"timm {name}: resolve_data_config" + (f", {subset} class names" if classes else ""),
            "input_size": [int(cfg["input_size"][1]), int(cfg["input_size"][2])],
            "mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]],
            "interpolation": cfg.get("interpolation"), "crop_pct": cfg.get("crop_pct"),
            "crop_mode": cfg.get("crop_mode"), "classes": classes, "num_classes": int(getattr(net, "num_classes", 0))}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{str(path)!r} is not readable JSON ({e})") from e


def _hf_defaults(directory: str) -> dict:
    d = Path(directory)
    if not (d / "config.json").is_file():
        raise ModelError(f"model.hf {str(d)!r} has no config.json; expected a local from_pretrained directory "
                         "(nothing is downloaded)")
    cfg = _read_json(d / "config.json")
    labels = cfg.get("id2label") or {}
    classes = [str(labels[k]) for k in sorted(labels, key=int)] if labels else None
    out = {"source": f"transformers {d.name}: config.json id2label", "classes": classes,
           "num_classes": len(classes or []) or int(cfg.get("num_labels") or 0),
           "input_size": None, "mean": None, "std": None, "interpolation": None, "crop_pct": None}
    pp = d / "preprocessor_config.json"
    if pp.is_file():
        p = _read_json(pp)
        out["source"] += ", preprocessor_config.json"
        size = (p.get("crop_size") if p.get("do_center_crop") else None) or p.get("size") or {}
        if isinstance(size, int):
            size = {"height": size, "width": size}
        if "height" in size and "width" in size:
            out["input_size"] = [int(size["height"]), int(size["width"])]
        elif "shortest_edge" in size:
            out["input_size"] = [int(size["shortest_edge"])] * 2
        if p.get("do_normalize", True) and p.get("image_mean") is not None:
            out["mean"], out["std"] = [float(v) for v in p["image_mean"]], [float(v) for v in p["image_std"]]
        out["interpolation"] = PIL_RESAMPLE.get(p.get("resample"), p.get("resample"))
        if p.get("do_center_crop") and p.get("crop_size") and isinstance(p.get("size"), dict):
            edge = p["size"].get("shortest_edge") or p["size"].get("height")
            crop = p["crop_size"].get("height") if isinstance(p["crop_size"], dict) else p["crop_size"]
            if edge and crop:
                out["crop_pct"] = round(float(crop) / float(edge), 4)
    elif isinstance(cfg.get("image_size"), int):
        out["input_size"] = [cfg["image_size"]] * 2
    return out


def named_defaults(model: dict) -> dict | None:
    """The preprocessing and classes of a model section naming ``timm`` or ``hf`` (None for
    other sources): {source, input_size, mean, std, interpolation, crop_pct, classes}."""
    if model.get("timm"):
        return _timm_defaults(str(model["timm"]), dict(model.get("factory_kwargs") or {}))
    if model.get("hf"):
        return _hf_defaults(str(model["hf"]))
    return None


def fill_model_section(model: dict) -> list[str] | str | None:
    """Fill the unset ``input_size``/``mean``/``std`` of a raw model section from the named
    model, record what was chosen under ``preprocessing``; returns the model's classes (or None)."""
    if model.get("preprocessing") or not (model.get("timm") or model.get("hf")):
        return None
    found = named_defaults(model)
    chosen = {}
    for key in ("input_size", "mean", "std"):
        if key not in model and found.get(key) is not None:
            model[key] = tuple(found[key])
            chosen[key] = found[key]
    model["preprocessing"] = {"source": found["source"], "applied": chosen,
                              **{k: found.get(k) for k in ("interpolation", "crop_pct", "crop_mode") if found.get(k)}}
    return found.get("classes")
