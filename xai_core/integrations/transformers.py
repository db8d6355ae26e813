"""The Hugging Face ``Trainer``: explain a probe set at the end of every epoch or evaluation.

    from xai_core.integrations.transformers import ExplainCallback
    cb = ExplainCallback(images, labels=labels, classes=names, out="summaries/vit", on="epoch",
                         mean=processor.image_mean, std=processor.image_std)
    Trainer(model=vit, args=args, train_dataset=ds, callbacks=[cb]).train()

Each time it fires it calls :meth:`xai_core.Monitor.log` with the model as it is: ``on="epoch"``
(``on_epoch_end``; step = the epoch index, 0 for the first) or ``on="evaluate"``
(``on_evaluate``; step = the trainer's ``global_step``). Only the world-process-zero writes.
The model's dict output (``ImageClassifierOutput``) is read at its ``logits``. Steps already in
the run (a training resumed from a checkpoint) are skipped, never duplicated.
"""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from ..monitor import Monitor

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - depends on what is installed
    raise ImportError("xai_core.integrations.transformers needs transformers: pip install -e .[hf]") from e


class ExplainCallback(TrainerCallback):
    """Log a :class:`~xai_core.Monitor` step at ``on_epoch_end`` (``on="epoch"``) or at
    ``on_evaluate`` (``on="evaluate"``). images, labels, classes, out and ``monitor`` keywords:
    as for :class:`~xai_core.Monitor` (``outputs``/``output`` defaults to the ``logits`` of the
    model's output). ``model``: the ``nn.Module`` to explain from the trainer's model (default:
    the model itself)."""

    def __init__(self, images, *, labels=None, classes=None, out="summaries/transformers", on: str = "epoch",
                 model: Callable | None = None, **monitor):
        if on not in ("epoch", "evaluate"):
            raise ConfigError(f"ExplainCallback: on is {on!r}; expected 'epoch' or 'evaluate'")
        self.on, self.model = on, model
        monitor.setdefault("output", "logits")
        self.monitor = Monitor(images, labels=labels, classes=classes, out=out, **monitor)
        self.logged: list[int] = []

    def _log(self, state, model, step: int) -> None:
        if not state.is_world_process_zero or model is None:
            return
        net = self.model(model) if self.model is not None else model
        if self.monitor.log(net, step=step):
            self.logged.append(step)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.on == "epoch":
            self._log(state, model, max(int(round(state.epoch or 0)) - 1, 0))

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if self.on == "evaluate":
            self._log(state, model, int(state.global_step))
