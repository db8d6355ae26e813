"""The one object explainers and metrics receive as ``model``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..devices import CPU, autocast, to_device, to_host
from ..errors import ModelError
from .batching import PassBatches
from .outputs import pick
from .spec import ACTIVATIONS  # noqa: F401  (importable from here too)


class PixelSpaceModel(nn.Module):
    """Prepends the user's mean/std normalisation to the network.

    Explainers then see pixel space, so "black" (baseline 0, deletion fill 0) means a black
    image, not the dataset mean, and maps are comparable across models with other statistics.
    ``net`` is kept as an attribute so layer names given by users (``features.3``) resolve
    relative to their own network. ``layout="nhwc"`` hands the network channels-last input;
    ``output`` selects the logits from a dict/tuple/object output (``models/outputs.py``).
    """

    def __init__(self, net: nn.Module, mean, std, *, layout: str = "nchw", output: str | int | None = None,
                 patch_grid: tuple[int, int] | None = None):
        super().__init__()
        self.net = net
        self.layout = layout
        self.output = output
        # Kept here, not on the handle, so every handle built around this module (the fast
        # forward path's, the sanity check's copy) reads the same.
        self.patch_grid = tuple(patch_grid) if patch_grid else None
        self.output_choice: dict | None = None  # how `output` was chosen (manifest model.output)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor):
        x = (x - self.mean) / self.std
        if self.layout == "nhwc":
            x = x.permute(0, 2, 3, 1)
        return pick(self.net(x), self.output)


class _Probabilities:
    """What both handles derive from ``logits``: probabilities, chunked prediction, and the
    count of passes whose logits were not finite."""

    activation: str
    num_classes: int

    def _counted(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` (N, K) logits, after adding its rows holding a NaN or ±inf to the count
        :meth:`take_nonfinite` reads. The count stays a tensor on ``out``'s device: no host
        round trip per pass."""
        bad = (~torch.isfinite(out.detach())).any(dim=1).sum() if out.ndim == 2 else (~torch.isfinite(out.detach())).sum()
        counts = self.__dict__.setdefault("_nonfinite", {})
        counts[bad.device] = bad + counts[bad.device] if bad.device in counts else bad
        return out

    def take_nonfinite(self) -> int:
        """Passes (images) whose logits held a NaN or ±inf since the last call; resets the
        count. Read it once per explanation or metric evaluation (it waits for the device)."""
        counts = self.__dict__.pop("_nonfinite", {})
        return int(sum(int(c) for c in counts.values()))

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, K) logits → (N, K) probabilities, differentiable."""
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, K) probabilities, differentiable where the handle is."""
        return self.activate(self.logits(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
        """Probabilities (N, K) without gradients, in chunks of ``batch_size``."""
        return self.activate(self.predict_logits(x, batch_size=batch_size))

    @torch.no_grad()
    def predict_logits(self, x: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
        """Logits (N, K) without gradients, in chunks of ``batch_size``."""
        out = [self.logits(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.num_classes, device=self.device)


@dataclass
class ClassifierHandle(_Probabilities):
    """A classifier in pixel space plus how its logits become probabilities.

    ``module`` maps (N, C, H, W) float32 in [0, 1] to logits (N, K) float32, C = ``channels``
    (3 RGB, 1 grey).
    ``activation`` is "sigmoid" (multi-label: each class independent) or "softmax"
    (single-label). Forward passes are counted in ``passes`` (images pushed through the
    network), which the benchmarks report.

    The module's device is the handle's :attr:`device`: inputs are moved there (a no-op when
    they are already there, as the engine arranges). ``precision`` ("fp32", "bf16", "fp16")
    is the autocast dtype of forward-only passes; a pass whose input requires grad runs in
    float32 and whole (its graph cannot be cut), while forward-only calls are cut into
    pieces when the device runs out of memory (``batches``, :mod:`.batching`).
    """

    module: PixelSpaceModel
    activation: str
    input_size: tuple[int, int]
    num_classes: int
    passes: int = 0
    channels: int = 3
    precision: str = "fp32"
    batches: PassBatches = field(default_factory=PassBatches)
    supports_gradients = True  # class attribute, not a field: see ForwardOnlyHandle
    kind = "pytorch"
    backend = "torch"  # what runs the gradient-free passes (a part's commit record says it)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ModelError(
                f"activation {self.activation!r} is not supported; expected one of {ACTIVATIONS}"
            )
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        """Where the network's weights are (the pixel-space wrapper's buffers follow them)."""
        return self.module.mean.device

    @property
    def net(self) -> nn.Module:
        return self.module.net

    @property
    def patch_grid(self) -> tuple[int, int] | None:
        """``model.patch_grid``: the (h, w) of a transformer's patch tokens, when set."""
        return getattr(self.module, "patch_grid", None)

    @property
    def output_choice(self) -> dict | None:
        """Which part of a dict/tuple output is the logits and why (None for a tensor)."""
        return getattr(self.module, "output_choice", None)

    @property
    def is_torchscript(self) -> bool:
        """Whether the network (or a part of it) is TorchScript, whose forward runs in C++."""
        return any(isinstance(m, torch.jit.ScriptModule) for m in self.net.modules())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, K) logits on :attr:`device`; keeps the graph if ``x`` requires grad."""
        x = to_device(x, self.device)
        if torch.is_grad_enabled() and x.requires_grad:
            out = self.module(x)
            self.passes += int(x.shape[0])
            return self._counted(out)
        return self.batches.forward(self._forward_only, x, self.device)

    def _forward_only(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, self.device):
            out = self.module(x)
        self.passes += int(x.shape[0])
        return self._counted(out.float() if self.precision != "fp32" else out)


class ForwardOnlyHandle(_Probabilities):
    """A classifier that answers forward passes only (ONNX Runtime, a served model).

    Same calling surface as :class:`ClassifierHandle` for what perturbation explainers,
    perturbation metrics and counterfactuals use (``logits``, ``probs``, ``predict``,
    ``activate``, ``passes``); there is no ``module``/``net``, so gradient explainers,
    layer-based methods, MC dropout and the randomisation check are refused up front
    (see :func:`xai_core.engine.check_capabilities`). Subclasses implement
    :meth:`_forward` on a float32 numpy batch (N, C, H, W) in [0, 1] pixel space and return
    (N, K) logits as numpy float32 (the user's mean/std, if any, applied by the subclass).
    """

    supports_gradients = False
    kind = "forward-only"
    device = CPU  # inputs cross to numpy here; the runtime (ONNX Runtime, a server) is elsewhere
    precision = "fp32"
    batches = None
    patch_grid = None
    output_choice: dict | None = None  # set by handles with several named outputs (ONNX, V2)

    @property
    def backend(self) -> str:
        return self.kind

    def __init__(self, *, activation: str, input_size: tuple[int, int], num_classes: int, channels: int = 3):
        if activation not in ACTIVATIONS:
            raise ModelError(f"activation {activation!r} is not supported; expected one of {ACTIVATIONS}")
        self.activation = activation
        self.input_size = tuple(input_size)
        self.num_classes = num_classes
        self.channels = channels
        self.passes = 0

    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def module(self):
        raise ModelError(f"this model is served by {self.kind}: it has no PyTorch module (gradients and layers are unavailable)")

    net = module

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            raise ModelError(f"this model is served by {self.kind}: gradients are unavailable")
        self.passes += int(x.shape[0])
        out = self._forward(to_host(x.detach()).to(torch.float32).contiguous().numpy())
        return self._counted(torch.from_numpy(out.astype("float32", copy=False)))
