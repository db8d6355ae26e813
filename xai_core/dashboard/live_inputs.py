"""What the "Explain an image" page takes in, checked before anything runs: uploaded images,
the model (the active run's, from its manifest, or an uploaded ONNX file with a class-names
file) and the bounds of one request. Every refusal is one line (:class:`LiveError`)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import XaiError


class LiveError(XaiError):
    """An upload or a request the live page refuses (one line, shown on the page)."""


@dataclass(frozen=True)
class LiveLimits:
    """The bounds of one request of the live page (README, "Explain an image")."""

    max_images: int = 8                  # images explained per click
    max_image_bytes: int = 20 << 20      # one uploaded image file
    max_pixels: int = 4096 * 4096        # decoded size of one image (before the resize to the model's input)
    max_onnx_bytes: int = 200 << 20      # an uploaded ONNX file (Streamlit's own upload cap is 200 MB too)
    max_passes: int = 20_000             # model passes one (image, label) may cost an explainer
    max_seconds: float = 60.0            # no new image is started once a request has run this long
    max_labels: int = 10                 # labels explained per image (top-k or named)


LIMITS = LiveLimits()
FORMATS = ("PNG", "JPEG")


def decode_upload(data: bytes, name: str, limits: LiveLimits = LIMITS) -> np.ndarray:
    """(H, W, 3) uint8 of one uploaded PNG or JPEG; LiveError for anything else (not an image,
    another format such as a 16-bit TIFF, too large)."""
    from PIL import Image, UnidentifiedImageError

    from ..data.base import to_rgb8

    if len(data) > limits.max_image_bytes:
        raise LiveError(f"{name}: {len(data) / 1e6:.1f} MB; the cap is {limits.max_image_bytes / 1e6:.0f} MB per image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in FORMATS:
                mode = f" ({im.mode})" if im.mode not in ("RGB", "L") else ""
                raise LiveError(f"{name} is a {im.format} image{mode}; expected PNG or JPEG")
            if im.width * im.height > limits.max_pixels:
                raise LiveError(f"{name} is {im.width}×{im.height} = {im.width * im.height:,} pixels; the cap is "
                                f"{limits.max_pixels:,}")
            return to_rgb8(im)
    except LiveError:
        raise
    except Image.DecompressionBombError as e:
        raise LiveError(f"{name} is too large to decode safely; the cap is {limits.max_pixels:,} pixels") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise LiveError(f"{name} is not an image PIL can read ({type(e).__name__}); expected PNG or JPEG") from e


@dataclass(frozen=True)
class LiveModel:
    """A model the page can load: ``model`` is a run configuration's ``model`` section,
    ``classes`` its class names, ``key`` what identifies it (cache key; part of the scratch
    run's name), ``label`` what the page says about it, ``origin`` the run it came from
    (empty for an upload)."""

    key: str
    label: str
    model: dict
    classes: tuple[str, ...]
    origin: str = ""

    @property
    def input_size(self) -> tuple[int, int]:
        s = self.model.get("input_size") or (224, 224)
        return (int(s), int(s)) if isinstance(s, (int, float)) else (int(s[0]), int(s[1]))

    @property
    def forward_only(self) -> bool:
        return bool(self.model.get("onnx") or self.model.get("url"))


_SOURCE_KEYS = ("factory", "torchscript", "onnx", "url", "module")


def model_of_run(manifest: dict, run_name: str) -> LiveModel:
    """The model a run was made with, from its manifest's configuration; refused when it cannot
    be loaded again (an in-memory module) or its file changed since (sha256 in the manifest)."""
    from ..models.loading import ModelSpec, model_identity

    cfg = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    model = dict(cfg.get("model") or {})
    if not any(model.get(k) for k in _SOURCE_KEYS):
        raise LiveError(f"run {run_name!r} records no model configuration; upload an ONNX file and its class names")
    if model.get("module"):
        raise LiveError(f"run {run_name!r} was made from an in-memory module ({model['module']}), which the "
                        "dashboard cannot load again; upload it as an ONNX file with its class names")
    classes = tuple(str(c) for c in manifest.get("classes") or ())
    if not classes:
        raise LiveError(f"run {run_name!r} records no class names")
    spec_keys = {k: v for k, v in model.items() if k in ModelSpec.__dataclass_fields__}
    for k in ("input_size", "mean", "std"):  # YAML lists, the dataclass's tuples
        if isinstance(spec_keys.get(k), list):
            spec_keys[k] = tuple(spec_keys[k])
    try:
        now = model_identity(ModelSpec(**spec_keys))
    except (TypeError, ValueError) as e:
        raise LiveError(f"run {run_name!r}: its model configuration cannot be read ({e})") from e
    then = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    changed = [k.removesuffix("_sha256") for k in ("weights_sha256", "torchscript_sha256", "onnx_sha256")
               if then.get(k) and now.get(k) != then.get(k)]
    if changed:
        raise LiveError(f"run {run_name!r}: the model's {', '.join(changed)} file changed (or is gone) since the run "
                        "was made; its explanations would not be this run's model's")
    ident = json.dumps({k: now.get(k) for k in sorted(now)}, sort_keys=True, default=str)
    key = hashlib.sha256((ident + json.dumps(model, sort_keys=True, default=str)).encode()).hexdigest()[:12]
    src = next(f"{k} {model[k]}" for k in _SOURCE_KEYS if model.get(k))
    return LiveModel(key, f"the model of run {run_name} ({src})", model, classes, origin=run_name)


def parse_classes(data: bytes, name: str, folder: Path) -> tuple[str, ...]:
    """Class names from an uploaded file, read as a run configuration's ``classes`` file is
    (``.json``: a list or ``{"0": name, …}``; ``.txt``: one name per line); kept in ``folder``."""
    from ..data.classes import read_classes_file
    from ..errors import ConfigError

    suffix = Path(name).suffix.lower()
    if suffix not in (".json", ".txt"):
        raise LiveError(f"{name}: class names must be a .json list or a .txt file with one name per line")
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return tuple(read_classes_file(path, what="class names"))
    except ConfigError as e:
        raise LiveError(str(e).replace(repr(str(path)), name)) from e
    except OSError as e:
        raise LiveError(f"cannot keep {name} under {folder}: {e.strerror or e}") from e


def onnx_input(path: Path) -> tuple[int | None, int | None, int | None]:
    """(C, H, W) of an ONNX file's image input, None for a symbolic dimension; LiveError when
    the file is not ONNX or its input is not one (N, C, H, W) float tensor."""
    from ..models.onnx import cpu_session, file_kind

    if file_kind(path) != "onnx":
        raise LiveError(f"{path.name} is not an ONNX file")
    try:
        inputs = cpu_session(path).get_inputs()
    except Exception as e:  # noqa: BLE001 - onnxruntime's own error types
        raise LiveError(f"{path.name}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from e
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    if len(inputs) != 1 or len(shape) != 4:
        got = [list(i.shape) for i in inputs]
        raise LiveError(f"{path.name}: its input{'s are' if len(inputs) != 1 else ' is'} {got}; expected one image "
                        "batch (N, C, H, W)")
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape[1:])  # type: ignore[return-value]


def save_onnx(data: bytes, name: str, folder: Path, limits: LiveLimits = LIMITS) -> Path:
    """The uploaded ONNX file, kept under ``folder`` by content hash (a scratch run's manifest
    names it, so it must outlive the upload)."""
    if len(data) > limits.max_onnx_bytes:
        raise LiveError(f"{name}: {len(data) / 1e6:.0f} MB; the cap is {limits.max_onnx_bytes / 1e6:.0f} MB")
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = folder / f"{digest}.onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    except OSError as e:
        raise LiveError(f"cannot keep {name} under {folder}: {e.strerror or e}") from e
    return path


def model_of_onnx(path: Path, name: str, classes: tuple[str, ...], *, input_size: tuple[int, int],
                  channels: int, activation: str = "softmax", mean=None, std=None) -> LiveModel:
    """An uploaded ONNX model: normalised (N, C, H, W) float32 → (N, K) logits, K = len(classes)."""
    if activation not in ("softmax", "sigmoid"):
        raise LiveError(f"activation {activation!r}; expected softmax or sigmoid")
    mean = list(mean) if mean is not None else [0.0] * channels
    std = list(std) if std is not None else [1.0] * channels
    model = {"onnx": str(path), "activation": activation, "input_size": list(input_size), "mean": mean, "std": std}
    key = hashlib.sha256(json.dumps([model, list(classes)], sort_keys=True).encode()).hexdigest()[:12]
    return LiveModel(key, f"uploaded {name} ({len(classes)} classes)", model, tuple(classes))
