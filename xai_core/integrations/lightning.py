"""PyTorch Lightning 2.x: explain a probe set every N epochs (or optimiser steps) of ``fit``.

    from xai_core.integrations.lightning import ExplainCallback
    cb = ExplainCallback(images, labels=labels, classes=names, out="summaries/lit", every_n_epochs=1)
    Trainer(max_epochs=10, callbacks=[cb]).fit(module, loader)

Each time it fires it calls :meth:`xai_core.Monitor.log` with the module as it is (step: the
epoch index with ``every_n_epochs``, the trainer's ``global_step`` with ``every_n_steps``). Only
the global-rank-zero process writes (under DDP every rank trains the same weights). A training
resumed from a checkpoint continues the same run: steps already in it are skipped, never
duplicated. ``Trainer(fast_dev_run=…)`` runs it like any other training.
"""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from ..monitor import Monitor

try:  # the unified package first, then the standalone one: same classes
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as e:
        raise ImportError("xai_core.integrations.lightning needs PyTorch Lightning 2.x: "
                          "pip install -e .[lightning] (or pip install pytorch-lightning)") from e


class ExplainCallback(Callback):
    """Log a :class:`~xai_core.Monitor` step every ``every_n_epochs`` epochs (at the end of the
    training epoch) or, when given, every ``every_n_steps`` optimiser steps.

    images, labels, classes, out and ``monitor`` keywords (explainers, metrics, mean, std,
    activation, …): as for :class:`~xai_core.Monitor`. ``model``: the ``nn.Module`` to explain,
    from the LightningModule (default: the module itself; e.g. ``lambda m: m.net`` when its
    ``forward`` is not the classifier's)."""

    def __init__(self, images, *, labels=None, classes=None, out="summaries/lightning", every_n_epochs: int | None = 1,
                 every_n_steps: int | None = None, model: Callable | None = None, **monitor):
        super().__init__()
        if every_n_steps is not None:
            every_n_epochs = None
        for name, v in (("every_n_epochs", every_n_epochs), ("every_n_steps", every_n_steps)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"ExplainCallback: {name} is {v!r}; expected an integer ≥ 1")
        if every_n_epochs is None and every_n_steps is None:
            raise ConfigError("ExplainCallback: give every_n_epochs or every_n_steps")
        self.every_n_epochs, self.every_n_steps = every_n_epochs, every_n_steps
        self.model = model
        self.monitor = Monitor(images, labels=labels, classes=classes, out=out, **monitor)
        self.logged: list[int] = []  # steps this callback committed (skipped ones excluded)

    def _log(self, trainer, pl_module, step: int) -> None:
        if not trainer.is_global_zero:
            return
        net = self.model(pl_module) if self.model is not None else pl_module
        if self.monitor.log(net, step=step):
            self.logged.append(step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_epochs is not None and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module, int(trainer.current_epoch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps is not None and trainer.global_step % self.every_n_steps == 0 \
                and trainer.global_step != getattr(self, "_last_step", None):
            self._last_step = trainer.global_step  # one log per optimiser step (gradient accumulation)
            self._log(trainer, pl_module, int(trainer.global_step))
