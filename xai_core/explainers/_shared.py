"""Helpers every explainer shares (re-exported by :mod:`.base`): randomness seeded by an image's
content, parameter defaults given at 224 px, and sampling inputs cut into forward passes."""

from __future__ import annotations

import hashlib

import torch

#: The image side at which the recommended defaults of ANCHORS.md are stated.
REFERENCE_SIDE = 224


def image_digest(image: torch.Tensor) -> bytes:
    """8-byte digest of an image's exact float32 values (C, H, W): the same pixels give the same
    digest wherever the image sits in a batch, and on every device (a copy to the device keeps
    every bit). Give it a host image (:meth:`Explainer.host_pixels`): a device image is copied
    back here, which waits for the device."""
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
