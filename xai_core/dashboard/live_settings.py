"""The settings the "Explain an image" page explains at, and what they cost: the active run's
explainer parameters (its defaults, so the page's maps are the run's), their values resolved on
the model's input size (occlusion's automatic window and stride) and the model passes per image
and label each explainer will make — shown before the click."""

from __future__ import annotations

from ..errors import XaiError
from .live_request import DEFAULT_EXPLAINERS, LiveRequest, explainer_choices, main_params
from .live_inputs import LiveError, LiveModel


def run_settings(manifest: dict | None) -> dict[str, dict]:
    """{explainer type: its numeric / yes-no parameters} of a run (its first instance of each
    type), so the page explains at the run's settings by default, not the registry's."""
    out: dict[str, dict] = {}
    for e in (manifest or {}).get("explainers") or []:
        if not isinstance(e, dict) or not isinstance(e.get("type"), str) or e["type"] in out:
            continue
        try:
            known = main_params(e["type"])
        except (KeyError, XaiError):  # an explainer this version does not know
            continue
        params = e.get("params") if isinstance(e.get("params"), dict) else {}
        out[e["type"]] = {k: params[k] for k in known if k in params and type(params[k]) is type(known[k])}
    return out


def default_explainers(model: LiveModel, manifest: dict | None = None) -> list[str]:
    """The run's explainers this model can run, else :data:`DEFAULT_EXPLAINERS`."""
    names = {m["name"] for m in explainer_choices(model)}
    mine = [t for t in run_settings(manifest) if t in names]
    return mine or [e for e in DEFAULT_EXPLAINERS if e in names] or sorted(names)[:1]


PASS_PARAMS = ("steps", "samples", "masks")  # a pass (or a batch of passes) per step or sample


def plan(model: LiveModel, req: LiveRequest) -> list[dict]:
    """Per explainer: ``name``, ``params`` as they will run (automatic values resolved on the
    model's input size: occlusion's window and stride) and ``passes``, model passes per image
    and label (occlusion windows, RISE masks, LIME / SHAP samples, IG steps…). LiveError for
    parameters the explainer refuses."""
    from ..config import config_from_dict

    try:
        exps, _ = config_from_dict(req.run_config(model)).instantiate()
    except XaiError as e:
        raise LiveError(str(e)) from e
    h, w = model.input_size
    out = []
    for e in exps:
        params = {k: getattr(e.params, k) for k in main_params(e.name) if hasattr(e.params, k)}
        if e.name == "occlusion":
            params["window"], params["stride"] = e.geometry(h, w)
        passes = passes_of(e, h, w)
        out.append({"name": e.instance_name, "params": params, "passes": passes})
    return out


def passes_of(exp, height: int, width: int) -> int:
    from ..service.protocol import passes_per_label

    n = passes_per_label(exp, height, width)
    if n == 1:
        n = max([int(getattr(exp.params, k)) for k in PASS_PARAMS if isinstance(getattr(exp.params, k, None), int)]
                or [1])
    return n


def plan_text(steps: list[dict]) -> str:
    """One line: each explainer's resolved parameters and passes, and their sum."""
    parts = []
    for st in steps:
        ps = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in st["params"].items())
        parts.append(f"{st['name']} ({ps + ' · ' if ps else ''}{st['passes']:,} pass{'es' if st['passes'] != 1 else ''})")
    total = sum(st["passes"] for st in steps)
    return f"{' · '.join(parts)} — {total:,} model passes per image and label"
