"""The explainer base class: batching, channel reduction and bookkeeping live here, so a
method file holds little more than its algorithm (:meth:`Explainer.attribute`).

Also the two helpers every method shares:

* :func:`pair_generator` — randomness that depends on (seed, image content, …) only, never on
  the batch an image happens to be in, so that "a batch equals per-image calls" holds for
  stochastic methods too;
* :func:`scaled` — parameter defaults given at 224 px (the size of the papers' ImageNet
  experiments), resolved from the input size at call time when a parameter is 0 ("auto").
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Sequence

import torch

from ..errors import ExplainerError
from ..params import NoParams, build_params, params_schema

#: The image side at which the recommended defaults of ANCHORS.md are stated.
REFERENCE_SIDE = 224


def image_digest(image: torch.Tensor) -> bytes:
    """8-byte digest of an image's exact float32 values (C, H, W): the same pixels give the same
    digest wherever the image sits in a batch."""
    arr = image.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(arr.tobytes(), digest_size=8).digest()


def pair_generator(seed: int, image: torch.Tensor, *extra: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from (seed, image content, *extra) — e.g. extra = (target,).

    Seeding from the content rather than the position keeps stochastic maps independent of
    batch composition and order.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(int(seed).to_bytes(8, "little", signed=True))
    h.update(image_digest(image))
    for e in extra:
        h.update(int(e).to_bytes(8, "little", signed=True))
    return torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & (2**63 - 1))


def scaled(value_at_224: float, side: int, minimum: int = 1) -> int:
    """``value_at_224`` pixels rescaled to an image of ``side`` pixels, at least ``minimum``."""
    return max(minimum, int(round(value_at_224 * side / REFERENCE_SIDE)))


def sample_chunks(n_pairs: int, n_samples: int, rows: int):
    """Split the n_pairs × n_samples model inputs of a sampling method into forward passes of at
    most ``rows`` inputs. Yields (pair_index, sample_index), two (R,) int64 tensors."""
    total = n_pairs * n_samples
    for start in range(0, total, max(1, rows)):
        r = torch.arange(start, min(start + rows, total))
        yield r // n_samples, r % n_samples


class Explainer:
    """Base class of every saliency method.

    Class-level metadata (read by the registry listing, config validation and the UI):
    ``name`` (registry key), ``display_name``, ``needs_gradients``, ``paper`` (citation or
    URL), ``signed`` (whether maps carry a meaningful sign), ``Params`` (a frozen dataclass
    of the method's parameters with their defaults; 0 or "" means "auto, from the input size"
    where a parameter's doc says so), ``smoke_params`` (overrides of the defaults that exercise
    every code path cheaply: registry-driven tests and smoke runs use them; not meant for real
    explanations).

    Subclasses implement :meth:`attribute` for (image, label) pairs. Perturbation methods
    that get every class's output from one forward pass override :meth:`explain_grouped`
    to share those passes across the labels of one image (see ``_perturbation.py``).

    ``diagnostics`` holds figures of the last call that a run may want to report, e.g.
    ``{"completeness_error": 0.004}`` for path methods (mean relative error of
    Σ attributions = F(x) − F(x')).
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = True
    paper: ClassVar[str] = ""
    signed: ClassVar[bool] = True
    Params: ClassVar[type] = NoParams
    smoke_params: ClassVar[dict[str, Any]] = {}
    # "sum" keeps the sign and, for path methods, completeness; "max_abs" is the classic
    # saliency of Simonyan et al. (2014); "none" means attribute() already returns (N, H, W).
    channel_reduction: ClassVar[str] = "sum"
    # True for methods that act inside the forward pass — backward rules attached where
    # activations are called, hooks on layers. A TorchScript model runs its graph in C++, out of
    # their reach, so it is refused up front (DeepLIFT would otherwise return maps that silently
    # break completeness by tens of per cent). Gradients through TorchScript are exact.
    needs_python_forward: ClassVar[bool] = False
    # True for methods that read a transformer's attention (``_attention.py``): refused, with
    # one line, on a model without attention.
    needs_attention: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None = None, *, instance_name: str | None = None):
        self.instance_name = instance_name or self.name
        self.params = build_params(self.Params, params, f"explainer {self.instance_name!r} ({self.name})")
        self._diag_pairs: dict[str, list[torch.Tensor]] = {}

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "display_name": cls.display_name or cls.name,
            "needs_gradients": cls.needs_gradients,
            "needs_python_forward": cls.needs_python_forward,
            "needs_attention": cls.needs_attention,
            "signed": cls.signed,
            "paper": cls.paper,
            "params": params_schema(cls.Params),
            "smoke_params": dict(cls.smoke_params),
            "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }

    @property
    def is_signed(self) -> bool:
        """Whether this instance's maps carry a sign: the class's declared ``signed`` unless
        a parameter changes it (Grad-CAM with ``relu=False``). A run also measures it: the
        manifest's ``signed`` is true when any stored map has a negative value."""
        return bool(type(self).signed)

    @property
    def resolved(self) -> dict | None:
        """What this instance resolved on the model it explains (a CAM layer and its grid, the
        attention modules found…), recorded in the run's manifest; None when nothing was."""
        return None

    def error(self, message: str) -> ExplainerError:
        """An :class:`ExplainerError` whose message starts with this instance's name."""
        return ExplainerError(f"{self.instance_name} ({self.name}): {message}")

    def reset_diagnostics(self) -> None:
        self._diag_pairs = {}

    def record(self, key: str, values: torch.Tensor) -> None:
        """Keep per-pair ``values`` of this call, in call order (see :attr:`diagnostics` and
        :meth:`pair_diagnostics`)."""
        self._diag_pairs.setdefault(key, []).append(values.detach().double().reshape(-1).cpu())

    def _recorded(self, key: str) -> torch.Tensor:
        chunks = self._diag_pairs.get(key, [])
        return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.float64)

    @property
    def diagnostics(self) -> dict[str, float]:
        """{key: mean of the finite recorded values} of the last call."""
        out = {}
        for key in self._diag_pairs:
            v = self._recorded(key)
            v = v[torch.isfinite(v)]
            if v.numel():
                out[key] = float(v.mean())
        return out

    def pair_diagnostics(self, n_pairs: int) -> dict[str, Any]:
        """Per-pair figures of the last call, {key: (n_pairs,) float64}, for the keys recorded
        exactly once per pair (the runner stores them in the ``details`` table)."""
        out = {}
        for key in self._diag_pairs:
            v = self._recorded(key)
            if v.numel() == n_pairs:
                out[key] = v.numpy()
        return out

    forward_batch: int = 32

    # ---- the algorithm -------------------------------------------------------------------
    def attribute(self, model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Attributions for pairs.

        model: :class:`~xai_core.models.ClassifierHandle`; images: (P, C, H, W) float32 pixels
        in [0, 1]; targets: (P,) int64 class indices. Returns (P, C, H, W) or (P, H, W).
        """
        raise NotImplementedError

    # ---- batching, owned here ------------------------------------------------------------
    def reduce(self, attr: torch.Tensor) -> torch.Tensor:
        if attr.ndim == 3:
            return attr
        if self.channel_reduction == "max_abs":
            return attr.abs().amax(dim=1)
        return attr.sum(dim=1)

    def check_model(self, model) -> None:
        """Refuse, before any work, a model this method cannot explain correctly."""
        if self.needs_python_forward and getattr(model, "is_torchscript", False):
            raise self.error(
                "cannot explain a TorchScript model: the method acts inside the Python forward pass "
                "(backward rules on activations, hooks on layers) and TorchScript runs its graph in C++, "
                "so its maps would be wrong; load the model from a Python factory (model.factory), "
                "or use a method that only needs gradients (gradient, integrated_gradients, smoothgrad, "
                "gradient_shap, xrai) or only forward passes (occlusion, rise, lime, kernel_shap, anchors)"
            )

    @staticmethod
    def probe_shape(model) -> tuple[int, int, int] | None:
        """(C, H, W) a probe pass of ``model`` takes, for checks that run the network up front
        (a CAM's layer, DeepLIFT's rule coverage, the attention's structure); None for a
        forward-only model or a handle without an input size."""
        size = getattr(model, "input_size", None)
        if size is None or not getattr(model, "supports_gradients", True):
            return None
        return (getattr(model, "channels", 3), *size)

    def cached(self, slot: str, key, compute):
        """``compute()``, kept in ``slot`` for as long as ``key`` (network, input shape…) is the
        same: what a probe pass found is found once per model."""
        cache = getattr(self, slot, None)
        if cache is None or cache[0] != key:
            cache = (key, compute())
            setattr(self, slot, cache)
        return cache[1]

    def check_pairs(self, model, images: torch.Tensor, targets) -> torch.Tensor:
        """``targets`` as a (P,) int64 tensor, after checking it matches ``images``."""
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if images.ndim != 4 or images.shape[0] != targets.shape[0]:
            raise self.error(
                f"images {tuple(images.shape)} and targets {tuple(targets.shape)} do not match; "
                "expected (P, C, H, W) and (P,)"
            )
        k = getattr(model, "num_classes", None)
        if k is not None and targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= k):
            raise self.error(f"target classes {targets.tolist()} out of range; expected 0 … {k - 1}")
        return targets

    def explain(self, model, images: torch.Tensor, targets: torch.Tensor | Sequence[int], *,
                batch_size: int = 32) -> torch.Tensor:
        """Saliency maps for (image, label) pairs.

        images: (P, C, H, W) float32 in [0, 1]; targets: (P,) class indices; batch_size: pairs
        per chunk (methods that expand a pair into many model inputs chunk those by it too).
        Returns (P, H, W) float32 on the raw scale of the method, sign kept.
        """
        targets = self.check_pairs(model, images, targets)
        self.check_model(model)
        self.reset_diagnostics()
        # Methods that expand a pair into many model inputs (steps, samples) read this as
        # "images per forward pass" so that memory stays bounded by the caller's choice.
        self.forward_batch = max(1, int(batch_size))
        out = []
        for i in range(0, images.shape[0], batch_size):
            x, t = images[i: i + batch_size], targets[i: i + batch_size]
            # A fresh copy in the standard layout: images permuted from HWC arrays are
            # channels-last, which takes other convolution kernels (other float rounding) and
            # would make a map depend on how its batch was assembled.
            x = x.detach().clone(memory_format=torch.contiguous_format)
            with torch.enable_grad() if self.needs_gradients else torch.no_grad():
                a = self.attribute(model, x, t)
            a = self.reduce(a.detach()).float()
            if a.shape != (x.shape[0], *x.shape[2:]):
                raise self.error(f"produced maps {tuple(a.shape)}; expected {(x.shape[0], *x.shape[2:])}")
            out.append(a)
        if not out:
            return torch.zeros(0, *images.shape[2:])
        return torch.cat(out)

    def explain_grouped(self, model, images: torch.Tensor, targets: Sequence[Sequence[int]], *,
                        batch_size: int = 32) -> list[torch.Tensor]:
        """Maps for several labels per image.

        images: (N, C, H, W); targets: N lists of class indices. Returns N tensors
        (L_i, H, W). The default flattens to pairs, so a batch mixes labels and images.
        """
        counts = [len(t) for t in targets]
        if len(counts) != images.shape[0]:
            raise self.error(f"{images.shape[0]} images but {len(counts)} label lists; expected one list per image")
        idx = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts, dtype=torch.long))
        flat = torch.as_tensor([c for t in targets for c in t], dtype=torch.long)
        maps = self.explain(model, images[idx], flat, batch_size=batch_size)
        return list(torch.split(maps, counts))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(instance_name={self.instance_name!r}, params={self.params})"
