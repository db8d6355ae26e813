"""Memory-aware batches (issue 15, item 2): the largest forward batch that fits, and a batch
halved and retried when the device runs out of memory.

Two places catch an out-of-memory error, because two kinds of pass hold memory differently:

* **Forward-only passes** (perturbations, curves, counterfactuals, MC dropout, predictions)
  keep no graph: a batch can be cut anywhere. :meth:`PassBatches.forward` runs a call whole;
  on OOM it remembers half the size as the limit, frees the cache and runs the call in pieces
  of that size, each piece halving again if it still does not fit.
* **Gradient passes** keep the graph of the whole batch until the backward pass, so the
  forward alone cannot be cut: :meth:`~xai_core.explainers.base.Explainer.explain` retries the
  chunk of pairs (halved) with fewer model inputs per pass, and keeps the size that fitted for
  the next chunks (:func:`backoff_rows`).

Only a batch of one image that does not fit stops the run, with one line. On a CUDA device and
``explain_batch_size: auto`` the run's batch is chosen at start by :func:`probe_batch`; every
size used and every back-off goes to the manifest (``model.batches``).
"""

from __future__ import annotations

import time

import torch

from ..errors import ModelError

#: What ``explain_batch_size: auto`` is on the CPU: the batch of every run before devices.
CPU_BATCH = 64
#: The probe's range on a GPU: it doubles from PROBE_START up to PROBE_CAP images per pass.
PROBE_START = 64
PROBE_CAP = 2048
#: A doubling is kept only when the time per image falls below this share of the last one.
PROBE_GAIN = 0.9


def is_oom(e: BaseException) -> bool:
    """An out-of-memory error of the device (torch raises ``torch.cuda.OutOfMemoryError``;
    cuDNN / cuBLAS report failed workspace allocations as plain RuntimeErrors)."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "ALLOC_FAILED" in text)


def release(device: torch.device) -> None:
    """Give the blocks of a failed attempt back to the device before retrying."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def single_image_oom(device, shape, what: str) -> ModelError:
    return ModelError(f"{what} ran out of {device} memory on a single image {tuple(shape)}: nothing smaller can run; "
                      "use a smaller model.input_size, a device with more memory, or model.device: cpu")


class PassBatches:
    """The batch sizes a run's forward-only passes use, and what the back-offs found.

    ``limit``: the most images per forward call known to fit after an OOM (None: none met).
    The record (:meth:`record`) lists the largest call that ran, the back-offs, and per
    explainer the pairs and model inputs per pass that fitted its gradient passes.
    """

    def __init__(self):
        self.limit: int | None = None
        self.largest = 0
        self.forward_backoffs = 0
        self.gradient_backoffs: dict[str, dict] = {}
        self.probe: dict | None = None

    def forward(self, fn, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``fn(x)`` for a forward-only batch ``x`` (N, …), cut into pieces that fit."""
        n = int(x.shape[0])
        if self.limit is not None and n > self.limit:
            return self._pieces(fn, x, device, self.limit)
        failed = False
        try:
            out = fn(x)
        except Exception as e:  # only an OOM is retried; the traceback is dropped before it
            if not is_oom(e):
                raise
            failed = True
        if not failed:
            self.largest = max(self.largest, n)
            return out
        if n == 1:
            raise single_image_oom(device, x.shape, "a forward pass")
        release(device)
        self.forward_backoffs += 1
        self.limit = max(1, n // 2) if self.limit is None else min(self.limit, max(1, n // 2))
        return self._pieces(fn, x, device, self.limit)

    def _pieces(self, fn, x, device, size: int) -> torch.Tensor:
        return torch.cat([self.forward(fn, x[i: i + size], device) for i in range(0, x.shape[0], size)])

    def note_gradient(self, name: str, pairs: int, rows: int) -> None:
        entry = self.gradient_backoffs.setdefault(name, {"backoffs": 0})
        entry.update(backoffs=entry["backoffs"] + 1, pairs=pairs, rows=rows)

    def record(self) -> dict:
        """What the manifest stores under ``model.batches`` (besides the configured size)."""
        return {"largest_forward": self.largest or None,
                "forward_limit": self.limit, "forward_backoffs": self.forward_backoffs,
                "gradient_backoffs": dict(self.gradient_backoffs), "probe": self.probe}


def backoff_rows(pairs: int, rows: int) -> tuple[int, int] | None:
    """(pairs, rows per pass) to retry a gradient chunk with after an OOM: half the pairs
    while there are several, else half the model inputs per pass; None when both are 1."""
    if pairs > 1:
        return (pairs + 1) // 2, max(1, rows // 2)
    if rows > 1:
        return 1, rows // 2
    return None


def _timed(fn, x, device) -> float:
    from ..devices import synchronize

    synchronize(device)
    t0 = time.perf_counter()
    fn(x)
    synchronize(device)
    return time.perf_counter() - t0


def probe_batch(fn, images: torch.Tensor, device: torch.device, *, start: int = PROBE_START,
                cap: int = PROBE_CAP, gain: float = PROBE_GAIN, clock=None) -> tuple[int, dict]:
    """(images per pass, record) for ``explain_batch_size: auto`` on an accelerator.

    ``fn`` runs one forward-only pass (the model under ``no_grad``, at the run's precision)
    on ``images`` tiled to the batch size, on ``device``. The size doubles from ``start``
    while the pass fits and its best-of-two time per image falls below ``gain`` × the last
    one, up to ``cap``; the last size that met both is chosen. An OOM at ``start`` halves down
    to 1. ``clock(fn, x)`` (seconds) replaces the timer in tests.
    """
    clock = clock or (lambda f, x: _timed(f, x, device))
    sizes: list[dict] = []
    best, best_ms, stop = None, None, f"cap {cap}"
    b = start
    while True:
        x = images.repeat((b + images.shape[0] - 1) // images.shape[0], *([1] * (images.dim() - 1)))[:b]
        failed = False
        try:
            with torch.no_grad():
                clock(fn, x)  # warm-up: kernel selection, allocator growth
                ms = 1e3 * min(clock(fn, x), clock(fn, x)) / b
        except Exception as e:
            if not is_oom(e):
                raise
            failed = True
        del x
        if failed:
            release(device)
            sizes.append({"batch": b, "ms_per_image": None})
            if best is None:
                if b == 1:
                    raise single_image_oom(device, images.shape[1:], "the batch probe")
                b //= 2
                continue
            stop = f"out of memory at {b}"
            break
        sizes.append({"batch": b, "ms_per_image": round(ms, 5)})
        if best is not None and not ms < gain * best_ms:
            stop = f"{b} is not faster per image than {best}"
            break
        best, best_ms = b, ms
        if best is not None and sizes[0]["ms_per_image"] is None:
            stop = "out of memory above it"
            break
        if b >= cap:
            break
        b = min(cap, b * 2)
    return best, {"sizes": sizes, "chosen": best, "stopped": stop}
