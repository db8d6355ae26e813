"""Load a classifier from a Python factory (+ optional weights), a TorchScript file or an ONNX
file (served by ONNX Runtime, forward passes only: :mod:`.onnx`)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import sys
from pathlib import Path

import torch
from torch import nn

from ..devices import check_precision, resolve_device
from ..errors import ModelError
from .handle import ClassifierHandle, PixelSpaceModel
from .onnx import load_onnx, refuse_onnx_file
from .outputs import choose_output, pick
from .spec import FAST_FORWARD_MODES, ModelSpec  # noqa: F401  (ModelSpec is importable from here too)


def _import_factory(ref: str, search: tuple[str, ...] = ()):
    """The factory callable of ``package.module:function``. Its module is looked up in
    ``search`` (``model.factory_path``: the configuration file's directory, like every other
    path of a configuration), then in the current directory, where a user's factory usually
    lives too, then on ``sys.path``."""
    if ":" not in ref:
        raise ModelError(f"model.factory is {ref!r}; expected 'package.module:function'")
    mod_name, fn_name = ref.split(":", 1)
    if not mod_name or mod_name.startswith("."):
        raise ModelError(f"model.factory is {ref!r}; expected 'package.module:function' with an absolute module name")
    dirs = [str(Path(d)) for d in (*search, os.getcwd())]
    for d in reversed(dirs):
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ModelError(f"model.factory {ref!r}: cannot import module {mod_name!r} ({e}); looked in "
                         f"{', '.join(dict.fromkeys(dirs))} and sys.path") from e
    except (Exception, SystemExit) as e:  # the user's module fails while it is imported (SyntaxError…)
        raise ModelError(f"model.factory {ref!r}: importing module {mod_name!r} raised {type(e).__name__}: "
                         f"{_first_line(e)}") from e
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ModelError(f"model.factory {ref!r}: module {mod_name!r} has no callable {fn_name!r}")
    return fn


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_network(spec: ModelSpec) -> nn.Module:
    """The user's network, in eval mode, without the pixel-space wrapper."""
    spec.validate()
    if spec.module:
        raise ModelError(f"model.module ({spec.module}) was an in-memory PyTorch module handed to xai_core.explain; "
                         "a configuration cannot load it again: call xai_core.explain with the module (a rerun of "
                         "the same call resumes the run), or use model.factory")
    if spec.torchscript:
        path = Path(spec.torchscript)
        if not path.is_file():
            raise ModelError(f"model.torchscript file {str(path)!r} does not exist")
        refuse_onnx_file(path, "torchscript")
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # torch raises RuntimeError subclasses with long texts
            raise ModelError(f"model.torchscript {str(path)!r} is not a TorchScript file: {str(e).splitlines()[0]}") from e
    elif spec.timm or spec.hf:
        from .named import build_hf, build_timm, load_weights

        if spec.hf:
            net = build_hf(spec.hf)
        else:
            net = build_timm(spec.timm, dict(spec.factory_kwargs))
            if spec.weights:
                load_weights(net, spec.weights, f"timm {spec.timm}")
    else:
        fn = _import_factory(spec.factory, tuple(spec.factory_path))
        try:
            net = fn(**spec.factory_kwargs)
        except (Exception, SystemExit) as e:  # the user's code: report it in one line, keep the chain
            raise ModelError(f"model.factory {spec.factory!r} raised {type(e).__name__}: {_first_line(e)}") from e
        if not isinstance(net, nn.Module):
            raise ModelError(f"model.factory {spec.factory!r} returned {type(net).__name__}; expected a torch.nn.Module")
        if spec.weights:
            path = Path(spec.weights)
            if not path.is_file():
                raise ModelError(f"model.weights file {str(path)!r} does not exist")
            refuse_onnx_file(path, "weights")
            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
                net.load_state_dict(state)
            except Exception as e:
                raise ModelError(f"model.weights {str(path)!r} could not be loaded into {spec.factory}: {str(e).splitlines()[0]}") from e
    return net.eval()


def guess_channels(net: nn.Module) -> int:
    """Input channels of ``net`` from its first 4-D weight (a conv's (out, in, kh, kw)), else 3.
    Registration order usually starts with the stem; :func:`load_model` checks it by a probe."""
    for p in net.parameters():
        if p.ndim == 4 and p.shape[1] in (1, 3):
            return int(p.shape[1])
    return 3


def _per_channel(values: tuple[float, ...], channels: int, what: str) -> tuple[float, ...]:
    """``values`` for ``channels`` channels: one value is repeated; equal values are collapsed
    for a grey model (the RGB-style default (0, 0, 0))."""
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if len(values) == 1 or (channels == 1 and len(set(values)) == 1):
        return (values[0],) * channels
    raise ModelError(f"model.{what} has {len(values)} values {list(values)} but the model takes {channels} "
                     f"channel{'s' if channels > 1 else ''}; expected {channels} value{'s' if channels > 1 else ''} (or one)")


def _probe(module: nn.Module, channels: int, size, device: torch.device):
    """The raw output (a tensor, dict, tuple…) of one black image, before ``model.output``."""
    output, module.output = module.output, None
    try:
        with torch.no_grad():
            return module(torch.zeros(1, channels, *size, device=device))
    finally:
        module.output = output


def _short(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"


def load_model(spec: ModelSpec, num_classes: int, network: nn.Module | None = None) -> ClassifierHandle:
    """Build the :class:`ClassifierHandle` (an :class:`~.onnx.OnnxHandle` for ``onnx``, a
    :class:`~.remote.RemoteHandle` for ``url``) and check that it outputs ``num_classes`` logits.
    ``network``: an in-memory module to wrap instead of loading one (``spec.module``).

    The input channels are ``spec.channels`` or, unset, detected: the first weight's guess,
    else the other of 1 / 3 if only that one runs."""
    if spec.url:
        from .remote import load_remote

        spec.validate()
        # The server's channels: model.channels, else one per mean/std value (one value: grey).
        c = spec.channels or max(len(spec.mean), len(spec.std))
        spec = dataclasses.replace(spec, mean=_per_channel(spec.mean, c, "mean"), std=_per_channel(spec.std, c, "std"))
        return load_remote(spec, num_classes)
    if spec.onnx:
        spec.validate()
        return load_onnx(spec, num_classes)
    device, _ = resolve_device(spec.device)  # an unavailable device stops here, before any work
    check_precision(spec.precision, device)
    if device.type == "cuda":
        # True float32 on the GPU: cuDNN would otherwise run float32 convolutions in TF32 (10-bit
        # mantissa) on Ampere and later, and maps would move with the GPU generation.
        # Reduced precision is asked for explicitly (model.precision).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if network is not None:
        spec.validate()
        net = network.eval()
    else:
        net = load_network(spec)
    net = net.to(device)
    size = tuple(spec.input_size)
    guess = spec.channels or guess_channels(net)
    tries = [guess] if spec.channels else [guess, 4 - guess]
    errors = []
    for channels in tries:
        module = PixelSpaceModel(net, _per_channel(spec.mean, channels, "mean"), _per_channel(spec.std, channels, "std"),
                                 layout=spec.layout, patch_grid=spec.patch_grid).to(device)
        try:
            raw = _probe(module, channels, size, device)
            break
        except Exception as e:  # a wrong channel count raises deep inside the user's network
            errors.append((channels, e))
    else:
        channels, e = errors[0]
        hint = "" if spec.channels else " (1 channel failed too)" if len(errors) > 1 else ""
        what = f"(1, {channels}, {size[0]}, {size[1]})" + (" channels-last" if spec.layout == "nhwc" else "")
        raise ModelError(f"model failed on a {what} input{hint}: {_short(e)}; "
                         + _layout_hint(net, spec, channels, size, device)) from e
    choice = choose_output(raw, spec.output, where=f"the model ({spec.factory or spec.torchscript or spec.module or spec.timm or spec.hf})")
    module.output = choice.selector
    module.output_choice = choice.describe()
    out = pick(raw, choice.selector)
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ModelError(
            f"model outputs shape {tuple(out.shape)}; expected (N, {num_classes}) logits, one per class of the dataset"
        )
    return ClassifierHandle(module=module, activation=spec.activation, input_size=size,
                            num_classes=num_classes, channels=channels, precision=spec.precision)


def device_record(spec: ModelSpec) -> dict:
    """What the manifest records under ``model.device``: requested, resolved, the device's
    name and why (a forward-only model runs on the CPU, or on its server)."""
    if spec.onnx or spec.url:
        from ..devices import CPU, device_name

        where = "ONNX Runtime's CPU provider" if spec.onnx else "a served model: the server chooses its device"
        return {"requested": spec.device, "resolved": "cpu", "name": device_name(CPU) if spec.onnx else None,
                "reason": where}
    return resolve_device(spec.device)[1]


def _layout_hint(net: nn.Module, spec: ModelSpec, channels: int, size, device: torch.device) -> str:
    """What to check after a failed probe: the other layout when the network runs on it."""
    other = "nhwc" if spec.layout == "nchw" else "nchw"
    module = PixelSpaceModel(net, _per_channel(spec.mean, channels, "mean"), _per_channel(spec.std, channels, "std"),
                             layout=other).to(device)
    try:
        _probe(module, channels, size, device)
    except Exception:
        return "check model.input_size, model.channels and model.layout (nchw | nhwc)"
    what = "channels-last (N, H, W, C)" if other == "nhwc" else "channels-first (N, C, H, W)"
    return f"the network runs on {what} input: set model.layout: {other}"


def module_identity(net: nn.Module) -> dict:
    """An in-memory module's class and a sha256 prefix of its state dict (names, dtypes,
    shapes, values): a rerun of ``xai_core.explain`` with changed weights is told apart."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    cls = type(net)
    return {"module": f"{cls.__module__}.{cls.__qualname__}", "module_sha256": h.hexdigest()[:16]}


def model_identity(spec: ModelSpec, network: nn.Module | None = None) -> dict:
    """What identifies the model in the summary manifest (reproducibility); ``network``: the
    in-memory module of ``spec.module``."""
    if network is not None:
        return module_identity(network)
    if spec.url:
        from .remote import remote_identity

        return remote_identity(spec)
    ident = {"factory": spec.factory, "torchscript": spec.torchscript, "weights": spec.weights}
    if spec.timm or spec.hf:
        ident.update({"timm": spec.timm} if spec.timm else {"hf": spec.hf})
        hf_weights = [p for p in sorted(Path(spec.hf).glob("*.safetensors")) + sorted(Path(spec.hf).glob("*.bin"))] \
            if spec.hf else []
        if hf_weights:
            ident["weights"], ident["weights_sha256"] = str(hf_weights[0]), _file_digest(hf_weights[0])
    if spec.onnx:
        ident["onnx"] = spec.onnx
    for key in ("weights", "torchscript", "onnx"):
        p = ident.get(key)
        if p and Path(p).is_file():
            ident[f"{key}_sha256"] = _file_digest(Path(p))
    return ident
