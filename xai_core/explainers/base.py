"""The explainer base class: batching, channel reduction and bookkeeping live here, so a
method file holds little more than its algorithm (:meth:`Explainer.attribute`).

Also, from :mod:`._shared`, the helpers every method shares:

* :func:`pair_generator` — randomness that depends on (seed, image content, …) only, never on
  the batch an image happens to be in, so that "a batch equals per-image calls" holds for
  stochastic methods too;
* :func:`scaled` — parameter defaults given at 224 px (the size of the papers' ImageNet
  experiments), resolved from the input size at call time when a parameter is 0 ("auto").

and, re-exported from :mod:`xai_core.devices`, the device helpers every method uses
(:func:`to_device`, :func:`to_host`, :func:`model_device`; the rule is in
:class:`Explainer`'s docstring).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch

from ..devices import model_device, to_device, to_host
from ..errors import ExplainerError
from ..models.batching import backoff_rows, is_oom, release, single_image_oom
from ..params import NoParams, build_params, params_schema
from ._shared import REFERENCE_SIDE, image_digest, pair_generator, sample_chunks, scaled  # noqa: F401

__all__ = ["Explainer", "REFERENCE_SIDE", "image_digest", "pair_generator", "scaled", "sample_chunks",
           "model_device", "to_device", "to_host"]

def _slice(host: tuple, i: int, n: int) -> tuple:
    """(host pixels or None, host targets) of pairs i … i + n."""
    pixels, targets = host
    return (None if pixels is None else pixels[i: i + n], targets[i: i + n])


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

    **Devices** (``model.device``; :mod:`xai_core.devices`). ``explain`` and
    ``explain_grouped`` move the pixels to the model's device once (``model_device(model)``)
    and hand :meth:`attribute` device tensors (images and targets); maps are returned on the
    device the caller's images came from. A method must keep to three rules, which a test
    runs every registered explainer through on a simulated device
    (``tests/test_device_rules.py``):

    1. build every model input on the device — tensors it creates take
       ``device=images.device``; random draws come from the seeded CPU generators of
       :func:`pair_generator` (the same numbers on every device) and move with
       :func:`to_device`;
    2. keep model outputs on the device until the last pass: no ``.item()``, ``.cpu()``,
       ``.tolist()``, ``.numpy()``, ``float()``/``int()``/``bool()`` of a device tensor inside a
       loop of passes (each waits for the device; :func:`to_host` once at the end);
    3. read image content on the host through :meth:`host_pixels` — the host copy taken once
       per call when the class sets ``uses_host_pixels`` (seeding by content, superpixels):
       never ``image.cpu()`` per image.

    Out-of-memory on the device: a chunk of pairs whose gradient passes do not fit is retried
    in halves, with half the model inputs per pass, down to one; forward-only passes are cut
    by the model handle itself (:mod:`xai_core.models.batching`).
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
    # True for methods that read image content on the host (seeded by content, segmented on
    # the CPU): explain takes one host copy of the pixels per call for host_pixels().
    uses_host_pixels: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None = None, *, instance_name: str | None = None):
        self.instance_name = instance_name or self.name
        self.params = build_params(self.Params, params, f"explainer {self.instance_name!r} ({self.name})")
        self._diag_pairs: dict[str, list[torch.Tensor]] = {}
        self._host: torch.Tensor | None = None
        self._host_targets: list[int] | None = None
        self._fit: tuple[int, int] | None = None  # (pairs, rows) that fitted after an OOM

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
        :meth:`pair_diagnostics`). They stay where they are computed (the device) until read."""
        self._diag_pairs.setdefault(key, []).append(values.detach().double().reshape(-1))

    def _recorded(self, key: str) -> torch.Tensor:
        chunks = self._diag_pairs.get(key, [])
        return to_host(torch.cat(chunks)) if chunks else torch.zeros(0, dtype=torch.float64)

    # ---- host copies ---------------------------------------------------------------------
    def host_copy(self, images: torch.Tensor) -> torch.Tensor | None:
        """The host copy of a call's ``images`` that :meth:`host_pixels` will serve (one
        device → host copy per call, made before the first pass), or None when the method
        reads no image content on the host."""
        return to_host(images.detach()) if self.uses_host_pixels else None

    def host_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (N, C, H, W) — the call's current chunk — on the host: the copy taken by
        ``explain`` when it is of these images, else a copy made now (a direct call)."""
        host = self._host
        if host is not None and host.shape == images.shape and host.device.type == "cpu":
            return host
        return to_host(images.detach())

    def host_targets(self, targets: torch.Tensor) -> list[int]:
        """``targets`` — the current chunk's — as host ints, from the copy ``explain`` kept (no
        device round trip); Captum reads a single target with ``.item()`` otherwise, on every
        pass."""
        kept = self._host_targets
        if kept is not None and len(kept) == targets.shape[0]:
            return list(kept)
        return to_host(targets).tolist()

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

    # ---- cost (xai_core/plan.py) ---------------------------------------------------------
    def passes_per_image(self, image_shape: tuple[int, int, int], labels: int) -> int | None:
        """Model passes (images pushed through the network, as ``model.passes`` counts them)
        to explain ``labels`` labels of one image of shape (C, H, W), from the method's
        definition; None when the definition does not fix it (an adaptive search): the plan
        then measures it on a probe image. The default: ``labels`` × :meth:`passes_per_pair`."""
        per = self.passes_per_pair(image_shape)
        return None if per is None else int(labels) * per

    def passes_per_pair(self, image_shape: tuple[int, int, int]) -> int | None:
        """Model passes per (image, label) pair; None: not fixed by the definition."""
        return None

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
        """``targets`` as a (P,) int64 host tensor, after checking it matches ``images`` (device
        targets cross once, before any pass: the range check and the host copy need them)."""
        targets = to_host(torch.as_tensor(targets, dtype=torch.long)).reshape(-1)
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
        Returns (P, H, W) float32 on the raw scale of the method, sign kept, on the device of
        ``images`` (computed on the model's device).
        """
        targets = self.check_pairs(model, images, targets)
        self.check_model(model)
        self.reset_diagnostics()
        device = model_device(model)
        home = images.device
        # Host copies first (of the caller's images: no copy when they are host images), then
        # the one move to the device.
        host = (self.host_copy(images), to_host(targets).tolist())
        images, targets = to_device(images, device), to_device(targets, device)
        # Methods that expand a pair into many model inputs (steps, samples) read this as
        # "images per forward pass" so that memory stays bounded by the caller's choice.
        batch_size = max(1, int(batch_size))
        self.forward_batch = batch_size
        pairs = batch_size
        if self._fit is not None:  # an earlier chunk ran out of device memory at this size
            pairs, self.forward_batch = min(pairs, self._fit[0]), min(batch_size, self._fit[1])
        out = []
        try:
            for i in range(0, images.shape[0], pairs):
                out.append(self._attribute_fitting(model, images[i: i + pairs], targets[i: i + pairs],
                                                   _slice(host, i, pairs)))
        finally:  # no stale host copy for a later direct call, after an error too
            self._host = self._host_targets = None
        if not out:
            return torch.zeros(0, *images.shape[2:], device=home)
        return to_device(torch.cat(out), home)

    def _attribute_chunk(self, model, x: torch.Tensor, t: torch.Tensor, host) -> torch.Tensor:
        # A fresh copy in the standard layout: images permuted from HWC arrays are
        # channels-last, which takes other convolution kernels (other float rounding) and
        # would make a map depend on how its batch was assembled.
        x = x.detach().clone(memory_format=torch.contiguous_format)
        self._host, self._host_targets = host
        with torch.enable_grad() if self.needs_gradients else torch.no_grad():
            a = self.attribute(model, x, t)
        a = self.reduce(a.detach()).float()
        if a.shape != (x.shape[0], *x.shape[2:]):
            raise self.error(f"produced maps {tuple(a.shape)}; expected {(x.shape[0], *x.shape[2:])}")
        return a

    def _attribute_fitting(self, model, x: torch.Tensor, t: torch.Tensor, host) -> torch.Tensor:
        """:meth:`_attribute_chunk`, retried in halves (and with fewer model inputs per pass)
        while the device runs out of memory; the size that fitted is kept for later chunks."""
        kept = {k: len(v) for k, v in self._diag_pairs.items()}
        try:
            return self._attribute_chunk(model, x, t, host)
        except Exception as e:  # only an OOM is retried; its traceback is dropped first
            if not is_oom(e):
                raise
        for k in list(self._diag_pairs):  # drop what the failed attempt recorded
            del self._diag_pairs[k][kept.get(k, 0):]
        device = model_device(model)
        release(device)
        smaller = backoff_rows(int(x.shape[0]), self.forward_batch)
        if smaller is None:
            raise single_image_oom(device, x.shape[1:], f"{self.instance_name} ({self.name})")
        pairs, self.forward_batch = smaller
        self._fit = (pairs, self.forward_batch)
        if getattr(model, "batches", None) is not None:
            model.batches.note_gradient(self.instance_name, pairs, self.forward_batch)
        return torch.cat([self._attribute_fitting(model, x[i: i + pairs], t[i: i + pairs], _slice(host, i, pairs))
                          for i in range(0, x.shape[0], pairs)])

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
