"""Explanations while a model trains: one *step* of a run per :meth:`Monitor.log` call.

    mon = xai_core.Monitor(images, labels=labels, classes=names, out="summaries/training")
    for epoch in range(10):
        train_one_epoch(model, optimiser)
        mon.log(model, step=epoch)       # explains the probe images with the model as it is now
    run = xai_core.open_run("summaries/training")
    run.steps                            # [0, 1, …, 9]
    run.scores.groupby(["step", "explainer", "metric"]).score.mean()

Each call explains the fixed probe set with the runner's own engine (the in-memory explainer of
:mod:`xai_core.append`, the same predictions, tags, maps and scores as :func:`xai_core.explain`)
and commits it as a step of the run (FORMAT.md "Steps"): the step is written into a directory
of its own and committed by the run's manifest listing it, so a crash during ``log`` loses at
most that step. The model is given back as it was: training/eval mode of every module,
``requires_grad`` and ``.grad`` of every parameter, the grad-enabled state, and the torch
(CPU and CUDA), numpy and ``random`` generators; the optimiser is never touched.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError, one_line_errors

#: Cheap defaults: two gradient-based maps, two map-only metrics and one faithfulness curve of
#: a few steps (a handful of forward passes per map).
MONITOR_EXPLAINERS = ("gradient", "gradcam")
MONITOR_METRICS = ("sparseness", "complexity", {"type": "deletion_auc", "params": {"steps": 8}})


class Monitor:
    """Explain a fixed probe set at chosen steps of a training run, into one run directory.

    images / labels / classes / boxes / masks / ids: the probe set, as for
    :func:`xai_core.explain` (``classes`` required: the K class names in output order).
    explainers / metrics: as there; None gives :data:`MONITOR_EXPLAINERS` and
    :data:`MONITOR_METRICS`. out: the run directory; an existing run of steps is continued
    (its configuration and probe images must match, ConfigError otherwise). options: the rest
    of a run configuration (``activation``, ``mean``, ``std``, ``input_size``, ``top_k`` …).
    """

    def __init__(self, images, *, labels: Sequence | None = None, classes: Sequence[str] | None = None,
                 explainers=None, metrics=None, out: str | Path = "summaries/monitor", boxes=None, masks=None,
                 ids: Sequence[str] | None = None, activation: str = "softmax", mean=(0.0, 0.0, 0.0),
                 std=(1.0, 1.0, 1.0), input_size=None, **options: Any):
        with one_line_errors():
            from .data.memory import MemoryDataset, as_items

            if classes is None:
                raise ConfigError("Monitor: classes= is required (the model's class names, in output order)")
            self.classes = [str(c) for c in classes]
            self.items = as_items(images, labels=labels, boxes=boxes, masks=masks, ids=ids)
            if not self.items:
                raise ConfigError("Monitor: images is empty; expected a few probe images to explain at every step")
            dataset = MemoryDataset(self.classes, self.items)
            if input_size is None:
                sizes = set(dataset.sizes)
                if len(sizes) > 1:
                    raise ConfigError(f"Monitor: the probe images have {len(sizes)} sizes; pass input_size=(H, W)")
                input_size = list(dataset.sizes[0])
            self.out = Path(out).expanduser().resolve()
            self._spec = dict(explainers=MONITOR_EXPLAINERS if explainers is None else explainers,
                              metrics=MONITOR_METRICS if metrics is None else metrics, activation=activation,
                              mean=mean, std=std, input_size=input_size, options=options)
            self._live = None
            self._network = None
            self.last = None  # the newest step's Explained (engine output), after a log call

    @property
    def steps(self) -> list[int]:
        """The run's committed steps ([] before the first :meth:`log`)."""
        from .summary.manifest import read_manifest
        from .summary.steps import is_stepped, step_numbers

        if not (self.out / "manifest.json").is_file():
            return []
        m = read_manifest(self.out)
        return step_numbers(m) if is_stepped(m) else []

    def log(self, model, step: int) -> bool:
        """Explain the probe set with ``model`` as it is now and commit it as ``step`` (an int
        ≥ 0). Returns False, computing nothing, when the run already holds ``step`` (a training
        resumed from a checkpoint); True when the step was added."""
        with one_line_errors():
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
                raise ConfigError(f"Monitor.log: step is {step!r}; expected an integer ≥ 0 (a training step or epoch)")
            step = int(step)
            from .monitor_write import commit_step

            live = self._explainer(model)
            with preserved(model):
                return commit_step(self, live, step)

    def _explainer(self, model):
        from torch import nn

        from .append import LiveExplainer

        if not isinstance(model, nn.Module):
            raise ConfigError(f"Monitor.log: model is {type(model).__name__}; expected an nn.Module")
        if self._live is None or self._network is not model:
            from .api import _raw_config
            from .config import config_from_dict

            s = self._spec
            opts = {"fast_forward": "off", "device": _device_of(model), **s["options"]}
            raw = _raw_config({"module": f"{type(model).__module__}.{type(model).__qualname__}"}, self.classes,
                              s["explainers"], s["metrics"], s["activation"], s["mean"], s["std"], s["input_size"],
                              self.out, opts)
            with preserved(model):
                self._live = LiveExplainer(config_from_dict(raw), network=model)
            self._network = model
        return self._live


def _device_of(model) -> str:
    """Where the model's parameters are: the engine explains there and never moves the model."""
    p = next(iter(model.parameters()), None)
    return "cpu" if p is None or p.device.type == "cpu" else str(p.device)


@contextmanager
def preserved(model):
    """Give ``model`` and the process back as they were: module modes, ``requires_grad`` and
    ``.grad`` of the parameters, the grad-enabled state and every random generator."""
    import torch

    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    grad_on = torch.is_grad_enabled()
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag, grad in params:
            p.requires_grad_(flag)
            p.grad = grad
        torch.set_grad_enabled(grad_on)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        np.random.set_state(np_state)
        random.setstate(py_state)

