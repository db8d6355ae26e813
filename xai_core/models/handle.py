"""The one object explainers and metrics receive as ``model``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ModelError

ACTIVATIONS = ("sigmoid", "softmax")


class PixelSpaceModel(nn.Module):
    """Prepends the user's mean/std normalisation to the network.

    Explainers then see pixel space, so "black" (baseline 0, deletion fill 0) means a black
    image, not the dataset mean, and maps are comparable across models with other statistics.
    ``net`` is kept as an attribute so layer names given by users (``features.3``) resolve
    relative to their own network.
    """

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


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
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)


@dataclass
class ClassifierHandle(_Probabilities):
    """A classifier in pixel space plus how its logits become probabilities.

    ``module`` maps (N, C, H, W) float32 in [0, 1] to logits (N, K) float32, C = ``channels``
    (3 RGB, 1 grey).
    ``activation`` is "sigmoid" (multi-label: each class independent) or "softmax"
    (single-label). Forward passes are counted in ``passes`` (images pushed through the
    network), which the benchmarks report.
    """

    module: PixelSpaceModel
    activation: str
    input_size: tuple[int, int]
    num_classes: int
    passes: int = 0
    channels: int = 3
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
    def net(self) -> nn.Module:
        return self.module.net

    @property
    def is_torchscript(self) -> bool:
        """Whether the network (or a part of it) is TorchScript, whose forward runs in C++."""
        return any(isinstance(m, torch.jit.ScriptModule) for m in self.net.modules())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, K) logits; keeps the graph if ``x`` requires grad."""
        self.passes += int(x.shape[0])
        return self._counted(self.module(x))


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
        out = self._forward(x.detach().to(torch.float32).contiguous().numpy())
        return self._counted(torch.from_numpy(out.astype("float32", copy=False)))
