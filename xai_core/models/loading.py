"""Load a classifier from a Python factory (+ optional weights), a TorchScript file or an ONNX
file (served by ONNX Runtime, forward passes only: :mod:`.onnx`)."""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .handle import ACTIVATIONS, ClassifierHandle, PixelSpaceModel
from .onnx import load_onnx, refuse_onnx_file

FAST_FORWARD_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class ModelSpec:
    """How to build the model. Exactly one of ``factory``, ``torchscript``, ``onnx`` and ``url`` is set.

    factory: ``"package.module:function"`` returning an ``nn.Module`` that maps normalised
        (N, 3, H, W) float32 to logits (N, K).
    weights: optional state-dict file for the factory's module, loaded with
        ``torch.load(weights_only=True)``.
    input_size: (H, W) the network expects (an int S means (S, S)); images are resized to it
        (``dataset.resize``).
    mean, std: per-channel normalisation applied to [0, 1] pixels before the network; one value
        applies to every channel.
    channels: 3 (RGB) or 1 (grey: images are converted to luma); None = detected from the
        network (its first 4-D weight, checked by a probe pass).
    url: a served model, ``http://host:port/v1/models/NAME:predict`` (KServe V1) or
        ``…/v2/models/NAME/infer`` (Open Inference Protocol V2); ``protocol`` (auto|v1|v2),
        ``outputs`` (logits|probabilities), ``timeout`` (s per request), ``retries`` and
        ``request_batch`` (images per request), ``binary_data`` (V2 binary tensors) apply to it
        only (see :mod:`.remote`).
    onnx: an ONNX file (normalised input → logits) run by ONNX Runtime; forward passes only.
    module: set by ``xai_core.explain`` for an in-memory ``nn.Module``: its class, recorded for
        the reader (the manifest's ``module_sha256`` identifies its weights); a configuration
        file cannot load it.
    fast_forward: "auto" runs the forward-only passes of a PyTorch model through an ONNX
        Runtime export when it reproduces torch's logits and is faster on a probe here
        (:mod:`.fast`); "on" whenever it is exact; "off" keeps torch.
    """

    factory: str | None = None
    weights: str | None = None
    torchscript: str | None = None
    activation: str = "sigmoid"
    input_size: tuple[int, int] | int = (224, 224)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    factory_kwargs: dict = field(default_factory=dict)
    url: str | None = None
    protocol: str = "auto"
    outputs: str = "logits"
    timeout: float = 30.0
    retries: int = 3
    request_batch: int = 32
    binary_data: bool = False
    channels: int | None = None
    onnx: str | None = None
    fast_forward: str | bool = "auto"  # YAML reads bare `off`/`on` as false/true
    module: str | None = None

    def __post_init__(self):
        if isinstance(self.fast_forward, bool):
            object.__setattr__(self, "fast_forward", "on" if self.fast_forward else "off")
        if isinstance(self.input_size, int) and not isinstance(self.input_size, bool):
            object.__setattr__(self, "input_size", (self.input_size, self.input_size))

    def validate(self) -> None:
        if sum(bool(s) for s in (self.factory, self.torchscript, self.onnx, self.url, self.module)) != 1:
            raise ModelError(
                "model: give exactly one of `factory` (package.module:function), `torchscript` (file.pt), "
                "`onnx` (file.onnx) or `url` (a served model)"
            )
        if self.url:
            from .remote import validate_remote

            validate_remote(self)
        if self.onnx and self.weights:
            raise ModelError("model.weights applies to model.factory; an ONNX file holds its own weights")
        if self.fast_forward not in FAST_FORWARD_MODES:
            raise ModelError(f"model.fast_forward is {self.fast_forward!r}; expected one of {FAST_FORWARD_MODES}")
        if self.activation not in ACTIVATIONS:
            raise ModelError(f"model.activation is {self.activation!r}; expected one of {ACTIVATIONS}")
        size = self.input_size
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in size) or min(size) < 8):
            raise ModelError(f"model.input_size is {size!r}; expected [height, width] (or one side) of integers ≥ 8")
        if self.channels is not None and self.channels not in (1, 3):
            raise ModelError(f"model.channels is {self.channels!r}; expected 1 (grey) or 3 (RGB), or unset to detect it")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ModelError(f"model.mean {self.mean!r} / std {self.std!r}: expected equal lengths and std > 0")


def _import_factory(ref: str):
    if ":" not in ref:
        raise ModelError(f"model.factory is {ref!r}; expected 'package.module:function'")
    mod_name, fn_name = ref.split(":", 1)
    # A user's factory usually lives next to where they run the tool.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ModelError(f"model.factory {ref!r}: cannot import module {mod_name!r} ({e})") from e
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ModelError(f"model.factory {ref!r}: module {mod_name!r} has no callable {fn_name!r}")
    return fn


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
    else:
        fn = _import_factory(spec.factory)
        try:
            net = fn(**spec.factory_kwargs)
        except Exception as e:  # the user's code: report it in one line, keep the chain
            raise ModelError(f"model.factory {spec.factory!r} raised {type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0]}") from e
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


def _probe(module: nn.Module, channels: int, size) -> torch.Tensor:
    with torch.no_grad():
        return module(torch.zeros(1, channels, *size))


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
        return load_remote(spec, num_classes)
    if spec.onnx:
        spec.validate()
        return load_onnx(spec, num_classes)
    if network is not None:
        spec.validate()
        net = network.eval()
    else:
        net = load_network(spec)
    size = tuple(spec.input_size)
    guess = spec.channels or guess_channels(net)
    tries = [guess] if spec.channels else [guess, 4 - guess]
    errors = []
    for channels in tries:
        module = PixelSpaceModel(net, _per_channel(spec.mean, channels, "mean"), _per_channel(spec.std, channels, "std"))
        try:
            out = _probe(module, channels, size)
            break
        except Exception as e:  # a wrong channel count raises deep inside the user's network
            errors.append((channels, e))
    else:
        channels, e = errors[0]
        hint = "" if spec.channels else " (1 channel failed too)" if len(errors) > 1 else ""
        raise ModelError(f"model failed on a (1, {channels}, {size[0]}, {size[1]}) input{hint}: {_short(e)}; "
                         "check model.input_size and model.channels") from e
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ModelError(
            f"model outputs shape {tuple(out.shape)}; expected (N, {num_classes}) logits, one per class of the dataset"
        )
    return ClassifierHandle(module=module, activation=spec.activation, input_size=size,
                            num_classes=num_classes, channels=channels)


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
    if spec.onnx:
        ident["onnx"] = spec.onnx
    for key in ("weights", "torchscript", "onnx"):
        p = ident.get(key)
        if p and Path(p).is_file():
            ident[f"{key}_sha256"] = _file_digest(Path(p))
    return ident
