"""The explanation service's wire format: parsing and checking ``:explain`` requests, and
writing the answers. Pure functions (no HTTP); every problem is a :class:`BadRequest` whose
one line the service answers with HTTP 400 (413 for an oversized body).

Request (KServe V1 style)::

    {"instances": [image, …],                  # uint8 H×W×C nested lists (C = 1, 3 or 4), or
                                               # {"b64": "<base64 PNG/JPEG>"}
     "id": "optional request id",
     "parameters": {"explainers": ["occlusion"],          # a subset of the service's (default: all)
                    "top_k": 2,  or  "labels": [3, "cat"],  # what to explain (default: --top-k)
                    "occlusion": {"window": 28, "stride": 14}}}   # an explainer's parameters

Answer::

    {"model_name", "id",
     "explanations": [{"predictions": [K probabilities],
                       "labels": [{"label", "class", "probability", "predicted",
                                   "maps": {explainer: H×W floats},
                                   "anchor": {"segments": H×W ids, "anchor": [ids], "precision",
                                              "coverage"},          # anchors only
                                   "scores": {explainer: {metric: score}}}]}],   # with --metrics
     "meta": {"explainers": [{"name", "type", "params", "signed"}], "input_size", "activation",
              "classes", "log": {"run", "part"}}}

Bounds (documented in README "Serving explanations"): at most ``max_instances`` images, each
of at most ``max_pixels`` pixels, in a body of at most ``max_body_bytes``; ``top_k`` and
``labels`` at most :data:`MAX_LABELS` labels; per image and label each explainer may make at most
``max_passes`` model passes (occlusion windows, RISE masks, LIME / KernelSHAP samples, anchors'
initial samples + ``max_passes``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import XaiError

MAX_LABELS = 10


class BadRequest(XaiError):
    """A request the service refuses: ``status`` 400 (or 413 for a body over the cap)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_instances: int = 16
    max_pixels: int = 4096 * 4096
    max_body_bytes: int = 64 << 20
    max_passes: int = 20_000


@dataclass
class ExplainRequest:
    images: list[np.ndarray]            # (H, W, 3) uint8
    explainers: tuple[str, ...]         # instance names, service order
    params: dict[str, dict] = field(default_factory=dict)   # instance name -> parameter overrides
    top_k: int | None = None
    labels: list[int] | None = None
    id: str | None = None


def parse_json(body: bytes) -> dict:
    try:
        obj = json.loads(body)
    except RecursionError:  # "[[[[…" nested deeper than the parser's stack
        raise BadRequest("the body nests JSON arrays or objects too deeply; expected "
                         '{"instances": [image, …]} with H×W×C pixel lists') from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"the body is not JSON ({type(e).__name__}: {str(e)[:80]}); expected "
                         '{"instances": [image, …]}') from None
    if not isinstance(obj, dict):
        raise BadRequest(f"the body is a JSON {type(obj).__name__}; expected an object {{\"instances\": [image, …]}}")
    return obj


def decode_image(inst, where: str, limits: Limits) -> np.ndarray:
    """(H, W, 3) uint8 of one instance: nested lists of 0–255 or ``{"b64": PNG/JPEG}``."""
    if isinstance(inst, dict):
        if set(inst) != {"b64"} or not isinstance(inst["b64"], str):
            raise BadRequest(f"{where} is an object with keys {sorted(inst)[:4]}; expected {{\"b64\": base64 PNG/JPEG}}")
        try:
            raw = base64.b64decode(inst["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"{where}.b64 is not valid base64") from None
        try:
            with Image.open(io.BytesIO(raw)) as im:
                if im.width * im.height > limits.max_pixels:
                    raise BadRequest(f"{where} is {im.width}×{im.height} = {im.width * im.height:,} pixels; the cap "
                                     f"is {limits.max_pixels:,}")
                if im.format not in ("PNG", "JPEG"):
                    raise BadRequest(f"{where}.b64 is a {im.format} image; expected PNG or JPEG")
                from ..data.base import to_rgb8

                return to_rgb8(im)
        except BadRequest:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise BadRequest(f"{where}.b64 is not a readable PNG or JPEG ({type(e).__name__})") from None
    if not isinstance(inst, list):
        raise BadRequest(f"{where} is a JSON {type(inst).__name__}; expected H×W×C nested lists of 0–255 or "
                         '{"b64": …}')
    try:
        a = np.asarray(inst)
    except ValueError:
        raise BadRequest(f"{where} is ragged; expected H×W×C nested lists of equal lengths") from None
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., :3] if a.shape[2] != 1 else a[..., 0]
    if a.ndim not in (2, 3) or min(a.shape[:2] or (0,)) < 1:
        raise BadRequest(f"{where} has shape {list(np.shape(inst))}; expected H×W×C with C = 1, 3 or 4 (or H×W)")
    if a.shape[0] * a.shape[1] > limits.max_pixels:
        raise BadRequest(f"{where} is {a.shape[1]}×{a.shape[0]} = {a.shape[0] * a.shape[1]:,} pixels; the cap is "
                         f"{limits.max_pixels:,}")
    if a.dtype.kind not in "iuf" or not np.isfinite(a).all() or (a != np.rint(a)).any() or a.min() < 0 or a.max() > 255:
        raise BadRequest(f"{where} holds values other than integers 0–255; expected uint8 pixels")
    a = a.astype(np.uint8)
    return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a)


def parse_request(obj: dict, *, explainers: list[str], classes: list[str], limits: Limits,
                  param_checker) -> ExplainRequest:
    """Check a parsed body. ``param_checker(name, params)`` raises XaiError for parameters the
    explainer ``name`` refuses (its own checks and the service's bounds)."""
    unknown = sorted(set(obj) - {"instances", "parameters", "id"})
    if unknown:
        raise BadRequest(f"unknown key {unknown[0]!r}; expected instances, parameters, id")
    inst = obj.get("instances")
    if not isinstance(inst, list) or not inst:
        raise BadRequest('"instances" is missing or empty; expected a list of images')
    if len(inst) > limits.max_instances:
        raise BadRequest(f'"instances" holds {len(inst)} images; the cap is {limits.max_instances} per request')
    rid = obj.get("id")
    if rid is not None and (not isinstance(rid, str) or not rid or len(rid) > 64 or not rid.isprintable()):
        raise BadRequest('"id" must be a printable string of 1–64 characters')
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest(f'"parameters" is a JSON {type(params).__name__}; expected an object')
    chosen = params.get("explainers", explainers)
    if (not isinstance(chosen, list) or not chosen or not all(isinstance(x, str) for x in chosen)
            or len(set(chosen)) != len(chosen)):
        raise BadRequest('parameters.explainers must be a non-empty list of distinct explainer names')
    bad = [x for x in chosen if x not in explainers]
    if bad:
        raise BadRequest(f"unknown explainer {bad[0]!r}; this service explains with {explainers}")
    req = ExplainRequest([decode_image(x, f"instances[{i}]", limits) for i, x in enumerate(inst)],
                         tuple(x for x in explainers if x in chosen), id=rid)
    for key, value in params.items():
        if key == "explainers":
            continue
        if key == "top_k":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= min(MAX_LABELS, len(classes)):
                raise BadRequest(f"parameters.top_k is {value!r}; expected an integer 1–{min(MAX_LABELS, len(classes))}")
            req.top_k = value
        elif key == "labels":
            req.labels = _labels(value, classes)
        elif key in explainers:
            if key not in req.explainers:
                raise BadRequest(f"parameters.{key} is given but {key!r} is not among parameters.explainers")
            if not isinstance(value, dict):
                raise BadRequest(f"parameters.{key} is a JSON {type(value).__name__}; expected an object of its parameters")
            try:
                param_checker(key, value)
            except XaiError as e:
                raise BadRequest(f"parameters.{key}: {e}") from None
            req.params[key] = dict(value)
        else:
            raise BadRequest(f"unknown parameter {key!r}; expected explainers, top_k, labels or an explainer's name "
                             f"({', '.join(explainers)})")
    if req.top_k is not None and req.labels is not None:
        raise BadRequest("give parameters.top_k or parameters.labels, not both")
    return req


def _labels(value, classes: list[str]) -> list[int]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LABELS:
        raise BadRequest(f"parameters.labels must be a list of 1–{MAX_LABELS} class indices or names")
    out = []
    for v in value:
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(classes):
            out.append(v)
        elif isinstance(v, str) and v in classes:
            out.append(classes.index(v))
        else:
            raise BadRequest(f"parameters.labels: {v!r} is not a class; expected an index 0–{len(classes) - 1} or "
                             f"one of {classes[:8]}{'…' if len(classes) > 8 else ''}")
    return sorted(set(out))


def passes_per_label(exp, height: int, width: int) -> int:
    """Model passes one (image, label) costs ``exp`` at most — the bound a request is checked
    against (explainers not listed cost a pass or none: Gradient-free ``random``)."""
    p = exp.params
    if exp.name == "occlusion":
        from ..explainers.occlusion import window_starts

        win, stride = exp.geometry(height, width)
        return len(window_starts(height, win, stride)) * len(window_starts(width, win, stride)) + 1
    if exp.name == "rise":
        return int(p.masks)
    if exp.name in ("lime", "kernel_shap"):
        return int(p.samples)
    if exp.name == "anchors":
        return int(p.initial_samples) + int(p.max_passes)
    return 1


# ---- answers --------------------------------------------------------------------------------


class _Raw(str):
    """JSON text spliced into an answer as is (maps: float32-exact, three times faster than
    ``json.dumps`` of Python floats)."""


def dumps(obj) -> bytes:
    """JSON of ``obj`` where numpy arrays are written by :func:`~xai_core.models.remote.json_array`."""
    from ..models.remote import json_array

    def enc(o):
        if isinstance(o, _Raw):
            return str(o)
        if isinstance(o, np.ndarray):
            return json_array(o.astype(np.float32) if o.dtype.kind == "f" else o) if o.size else json.dumps(o.tolist())
        if isinstance(o, dict):
            return "{" + ",".join(f"{json.dumps(str(k))}:{enc(v)}" for k, v in o.items()) + "}"
        if isinstance(o, (list, tuple)):
            return "[" + ",".join(enc(v) for v in o) + "]"
        if isinstance(o, (np.floating, float)):
            return json.dumps(float(o)) if math.isfinite(float(o)) else "null"
        if isinstance(o, np.integer):
            return str(int(o))
        if isinstance(o, np.bool_):
            return "true" if o else "false"
        return json.dumps(o)

    return enc(obj).encode()


def error_body(message: str) -> bytes:
    return json.dumps({"error": " ".join(str(message).split())[:1000]}).encode()
