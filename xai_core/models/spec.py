"""The model section of the run configuration (:class:`ModelSpec`), without torch: the
configuration is parsed and checked before anything heavy is imported, so that a CLI error
("config file does not exist", a bad value) never waits for ``import torch``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ModelError

ACTIVATIONS = ("sigmoid", "softmax")
DEVICE_CHOICES = "auto | cpu | cuda | cuda:N"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
PRECISION_NAMES = ("fp32", "bf16", "fp16")  # xai_core.devices.PRECISIONS maps them to dtypes
FAST_FORWARD_MODES = ("auto", "on", "off")
LAYOUTS = ("nchw", "nhwc")


def check_device_name(value) -> str | None:
    """The problem with ``model.device`` = ``value`` as a name (None when it is well formed);
    whether that device exists is checked when the model is loaded
    (:func:`xai_core.devices.resolve_device`)."""
    if not isinstance(value, str) or not _DEVICE_RE.match(value):
        return f"model.device is {value!r}; expected one of {DEVICE_CHOICES}"
    return None


def check_precision_name(value) -> str | None:
    if value not in PRECISION_NAMES:
        return f"model.precision is {value!r}; expected one of {' | '.join(PRECISION_NAMES)}"
    return None


@dataclass(frozen=True)
class ModelSpec:
    """How to build the model. Exactly one of ``factory``, ``torchscript``, ``onnx`` and ``url`` is set.

    factory: ``"package.module:function"`` returning an ``nn.Module`` that maps normalised
        (N, 3, H, W) float32 to logits (N, K). The module is looked up in ``factory_path``
        (the configuration file's directory unless given; entries relative to it), then in
        the current directory, then on ``sys.path``.
    weights: optional state-dict file for the factory's module, loaded with
        ``torch.load(weights_only=True)``.
    input_size: (H, W) the network expects (an int S means (S, S)); images are resized to it
        (``dataset.resize``).
    mean, std: per-channel normalisation applied to [0, 1] pixels before the network; one value
        (a number or a one-element list) applies to every channel.
    channels: 3 (RGB) or 1 (grey: images are converted to luma); None = detected from the
        network (its first 4-D weight, checked by a probe pass).
    layout: "nchw" (default) or "nhwc": the network takes channels-last (N, H, W, C) input;
        explainers still see (N, C, H, W) pixels, transposed on the way in.
    output: which part of a non-tensor output holds the logits — a dict key (``logits``, as
        Hugging Face models return), an attribute name, or a tuple index (``0``); for an ONNX
        file or a V2 server, an output name (or index). None: a tensor as is; a dict with
        exactly one of ``logits``/``scores``/``output``, or a tuple whose first element is
        (N, K), is taken and the choice recorded (``models/outputs.py``).
    patch_grid: [h, w] of a transformer's patch tokens, for layer and attention explainers
        when the grid is not square (unset: the square grid after a class/register prefix).
    url: a served model, ``http://host:port/v1/models/NAME:predict`` (KServe V1) or
        ``…/v2/models/NAME/infer`` (Open Inference Protocol V2), ``…/api/v1.0/predictions``
        (Seldon); ``protocol`` (auto|v1|v2|seldon), ``outputs`` (logits|probabilities), ``timeout`` (s per request), ``retries`` and
        ``request_batch`` (images per request), ``binary_data`` (V2 binary tensors) apply to it
        only (see :mod:`.remote`).
    onnx: an ONNX file (normalised input → logits) run by ONNX Runtime; forward passes only.
    module: set by ``xai_core.explain`` for an in-memory ``nn.Module``: its class, recorded for
        the reader (the manifest's ``module_sha256`` identifies its weights); a configuration
        file cannot load it.
    fast_forward: "auto" runs the forward-only passes of a PyTorch model through an ONNX
        Runtime export when it reproduces torch's logits and is faster on a probe here
        (:mod:`.fast`); "on" whenever it is exact; "off" keeps torch.
    device: where a PyTorch model runs — "auto" (the first CUDA device torch sees, else the
        CPU), "cpu", "cuda" or "cuda:N" (:func:`xai_core.devices.resolve_device`).
    precision: "fp32", "bf16" or "fp16": the autocast dtype of forward-only passes (gradient
        passes stay float32); fp16 needs a CUDA device.
    timm: a timm model name, built with ``pretrained=False`` (``factory_kwargs`` passed on) and
        ``weights`` (.safetensors or a state dict) loaded into it; hf: a local transformers
        ``from_pretrained`` directory. Unset input_size/mean/std (and dataset classes) come from
        the model; what was chosen is ``preprocessing`` (written by the configuration reader,
        :mod:`.named`).
    """

    factory: str | None = None
    weights: str | None = None
    torchscript: str | None = None
    activation: str = "sigmoid"
    input_size: tuple[int, int] | int = (224, 224)
    mean: tuple[float, ...] | float = (0.0, 0.0, 0.0)
    std: tuple[float, ...] | float = (1.0, 1.0, 1.0)
    factory_kwargs: dict = field(default_factory=dict)
    factory_path: tuple[str, ...] | str = ()
    url: str | None = None
    protocol: str = "auto"
    outputs: str = "logits"
    timeout: float = 30.0
    retries: int = 3
    request_batch: int = 32
    binary_data: bool = False
    channels: int | None = None
    layout: str = "nchw"
    output: str | int | None = None
    patch_grid: tuple[int, int] | None = None
    onnx: str | None = None
    fast_forward: str | bool = "auto"  # YAML reads bare `off`/`on` as false/true
    module: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    timm: str | None = None
    hf: str | None = None
    preprocessing: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.fast_forward, bool):
            object.__setattr__(self, "fast_forward", "on" if self.fast_forward else "off")
        if isinstance(self.input_size, int) and not isinstance(self.input_size, bool):
            object.__setattr__(self, "input_size", (self.input_size, self.input_size))
        for key in ("mean", "std"):  # `mean: 0` is one value for every channel, as a list of one is
            v = getattr(self, key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                object.__setattr__(self, key, (float(v),))
        if isinstance(self.patch_grid, list):
            object.__setattr__(self, "patch_grid", tuple(self.patch_grid))
        if isinstance(self.factory_path, (str, list)):
            object.__setattr__(self, "factory_path", (self.factory_path,) if isinstance(self.factory_path, str)
                               else tuple(self.factory_path))

    def validate(self) -> None:
        if sum(bool(s) for s in (self.factory, self.torchscript, self.onnx, self.url, self.module, self.timm,
                                 self.hf)) != 1:
            raise ModelError(
                "model: give exactly one of `factory` (package.module:function), `torchscript` (file.pt), "
                "`onnx` (file.onnx), `url` (a served model), `timm` (a timm model name) or `hf` (a local "
                "transformers directory)"
            )
        if self.hf and self.weights:
            raise ModelError("model.weights applies to model.factory and model.timm; a model.hf directory holds "
                             "its own weights")
        if self.url:
            from .protocols import detect_protocol, validate_remote

            validate_remote(self)
            if self.layout != "nchw":
                raise ModelError("model.layout: nhwc is not supported for a served model (model.url); "
                                 "the server receives (N, C, H, W) tensors")
            if self.output is not None and detect_protocol(self.url, self.protocol) != "v2":
                raise ModelError(f"model.output is {self.output!r}, but a V1 or Seldon server answers one list of scores; "
                                 "model.output names an output of a V2 server or an ONNX file, or a key of a "
                                 "Python model's dict/tuple output")
        if self.onnx and self.weights:
            raise ModelError("model.weights applies to model.factory; an ONNX file holds its own weights")
        problem = check_device_name(self.device) or check_precision_name(self.precision)
        if problem:
            raise ModelError(problem)
        if (self.onnx or self.url) and (self.device not in ("auto", "cpu") or self.precision != "fp32"):
            runtime = "ONNX Runtime on the CPU" if self.onnx else "its server"
            raise ModelError(f"model.device {self.device!r} / precision {self.precision!r} apply to PyTorch models; "
                             f"{'an ONNX model' if self.onnx else 'a served model'} runs in {runtime}: "
                             "leave device auto (or cpu) and precision fp32")
        if self.fast_forward not in FAST_FORWARD_MODES:
            raise ModelError(f"model.fast_forward is {self.fast_forward!r}; expected one of {FAST_FORWARD_MODES}")
        if self.activation not in ACTIVATIONS:
            raise ModelError(f"model.activation is {self.activation!r}; expected one of {ACTIVATIONS}")
        if self.layout not in LAYOUTS:
            raise ModelError(f"model.layout is {self.layout!r}; expected one of {LAYOUTS} "
                             "(nhwc: the network takes channels-last (N, H, W, C) input)")
        if isinstance(self.output, bool) or (isinstance(self.output, int) and self.output < 0) or self.output == "":
            raise ModelError(f"model.output is {self.output!r}; expected a key or output name (e.g. logits) "
                             "or a tuple index ≥ 0")
        grid = self.patch_grid
        if grid is not None and (len(grid) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                           for v in grid)):
            raise ModelError(f"model.patch_grid is {list(grid)!r}; expected [h, w], two integers ≥ 1")
        size = self.input_size
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in size) or min(size) < 8):
            raise ModelError(f"model.input_size is {size!r}; expected [height, width] (or one side) of integers ≥ 8")
        if self.channels is not None and self.channels not in (1, 3):
            raise ModelError(f"model.channels is {self.channels!r}; expected 1 (grey) or 3 (RGB), or unset to detect it")
        if (len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std))) or any(s <= 0 for s in self.std):
            raise ModelError(f"model.mean {list(self.mean)!r} / std {list(self.std)!r}: expected equal lengths "
                             "(or one value for every channel) and std > 0")
