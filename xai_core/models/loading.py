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

FAST_FORWARD_MODES = ("auto", "off")


@dataclass(frozen=True)
class ModelSpec:
    """How to build the model. Exactly one of ``factory``, ``torchscript`` and ``onnx`` is set.

    factory: ``"package.module:function"`` returning an ``nn.Module`` that maps normalised
        (N, 3, H, W) float32 to logits (N, K).
    weights: optional state-dict file for the factory's module, loaded with
        ``torch.load(weights_only=True)``.
    input_size: (H, W) the network expects; images are resized to it.
    mean, std: per-channel normalisation applied to [0, 1] pixels before the network.
    onnx: an ONNX file (normalised input → logits) run by ONNX Runtime; forward passes only.
    fast_forward: "auto" runs the forward-only passes of a PyTorch model through an ONNX
        Runtime export when it reproduces torch's logits (:mod:`.fast`); "off" keeps torch.
    """

    factory: str | None = None
    weights: str | None = None
    torchscript: str | None = None
    activation: str = "sigmoid"
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    factory_kwargs: dict = field(default_factory=dict)
    onnx: str | None = None
    fast_forward: str = "auto"

    def validate(self) -> None:
        if sum(bool(s) for s in (self.factory, self.torchscript, self.onnx)) != 1:
            raise ModelError(
                "model: give exactly one of `factory` (package.module:function), `torchscript` (file.pt) "
                "or `onnx` (file.onnx)"
            )
        if self.onnx and self.weights:
            raise ModelError("model.weights applies to model.factory; an ONNX file holds its own weights")
        if self.fast_forward not in FAST_FORWARD_MODES:
            raise ModelError(f"model.fast_forward is {self.fast_forward!r}; expected one of {FAST_FORWARD_MODES}")
        if self.activation not in ACTIVATIONS:
            raise ModelError(f"model.activation is {self.activation!r}; expected one of {ACTIVATIONS}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise ModelError(f"model.input_size is {self.input_size!r}; expected [height, width] ≥ 8")
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
        net = _import_factory(spec.factory)(**spec.factory_kwargs)
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


def load_model(spec: ModelSpec, num_classes: int) -> ClassifierHandle:
    """Build the :class:`ClassifierHandle` (an :class:`~.onnx.OnnxHandle` for ``onnx``) and
    check that it outputs ``num_classes`` logits."""
    if spec.onnx:
        spec.validate()
        return load_onnx(spec, num_classes)
    net = load_network(spec)
    handle = ClassifierHandle(
        module=PixelSpaceModel(net, spec.mean, spec.std),
        activation=spec.activation,
        input_size=tuple(spec.input_size),
        num_classes=num_classes,
    )
    with torch.no_grad():
        probe = torch.zeros(1, len(spec.mean), *spec.input_size)
        try:
            out = handle.module(probe)
        except Exception as e:
            raise ModelError(f"model failed on a (1, {len(spec.mean)}, {spec.input_size[0]}, {spec.input_size[1]}) input: {e}") from e
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ModelError(
            f"model outputs shape {tuple(out.shape)}; expected (N, {num_classes}) logits, one per class of the dataset"
        )
    return handle


def model_identity(spec: ModelSpec) -> dict:
    """What identifies the model in the summary manifest (reproducibility)."""
    ident = {"factory": spec.factory, "torchscript": spec.torchscript, "weights": spec.weights}
    if spec.onnx:
        ident["onnx"] = spec.onnx
    for key in ("weights", "torchscript", "onnx"):
        p = ident.get(key)
        if p and Path(p).is_file():
            ident[f"{key}_sha256"] = _file_digest(Path(p))
    return ident
