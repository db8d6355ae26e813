"""Toy models that misbehave in a run's second batch (NaN logits, a device error, a Ctrl-C): the
failure and Ctrl-C tests' ``model.factory`` (``test_runner_reliability:nan_net`` …)."""

from __future__ import annotations

import os
import sys


def _in_plan_probe() -> bool:
    """Whether this forward call comes from the run's plan (``xai_core/plan.py`` probes the first
    part before any part is computed): those passes are not the run's batches."""
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_filename.endswith(os.path.join("xai_core", "plan.py")):
            return True
        f = f.f_back
    return False


class _BadOnSecondBatch:
    """A ColourNet whose second full batch (part 1 of a batch_size=4 run) misbehaves; the plan's
    probe of part 0 does not count. Its state lives in Python, which an ONNX export cannot keep:
    the tests using it set ``model.fast_forward=off``."""

    def __new__(cls, how):
        from toy import ColourNet

        class Net(ColourNet):
            batches = 0

            def forward(self, x):
                out = super().forward(x)
                if x.shape[0] == 4 and not _in_plan_probe():
                    Net.batches += 1
                    if Net.batches == 2:
                        return how(out)
                return out

        return Net().eval()


def nan_net():
    def how(out):
        out = out.clone()
        out[0, 1] = float("nan")
        return out

    return _BadOnSecondBatch(how)


def flaky_net():
    def how(out):
        # Not an out-of-memory error: those are retried in smaller batches (tests/models/test_batching.py).
        raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)\nmore text")

    return _BadOnSecondBatch(how)
