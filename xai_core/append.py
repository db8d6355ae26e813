"""Explaining images as they arrive, and appending them to an open-ended run.

:class:`LiveExplainer` computes explanations of in-memory images with the runner's own engine
(:func:`xai_core.engine.compute_part`: the same predictions, tags, maps, details and scores a run
stores); :class:`RunLog` commits each batch it is given as a new part of a run directory in the
normal format, so the dashboard browses the run while it grows. The explanation service's
``--log-run`` and the dashboard's "add to a run" both use them::

    ex = LiveExplainer(config)                       # a RunConfig with dataset.kind "memory"
    with RunLog.open("summaries/served", ex) as log:
        got = log.append([Item(image)])          # committed as the next part
        got.result["saliency"]["occlusion"][0]   # the map of the first explained label

An open-ended run (FORMAT.md, "Open-ended runs") has ``open_ended: true`` in its manifest; its
progress totals grow with every part; it is ``running`` while a writer holds it open (the writer
refreshes ``updated`` every few minutes, so a live log never reads as stale) and ``complete``
once it is closed. Each appended batch is computed as the first part of a run of its own images
(seeded as part 0), so an image gets the same maps whether it is explained alone, by
:func:`xai_core.explain`, or at any position of a log.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .config import RunConfig
from .data.memory import Item, MemoryDataset
from .engine import RunContext, compute_part
from .errors import ConfigError, SummaryError
from .summary.lock import RunLock
from .summary.reader import RunReader, read_manifest
from .summary.writer import RunWriter, committed_parts, make_run_dir, remove_temporaries, write_part

#: Seconds between refreshes of an open log's ``updated`` stamp (the Runs page flags a running
#: run as stale after 15 minutes without one).
HEARTBEAT_S = 240.0


@dataclass
class Explained:
    """One computed batch: ``result`` is :func:`~xai_core.engine.compute_part`'s output (column
    dicts ``samples``, ``labels``, ``scores``, ``details``; arrays ``images``, ``saliency``);
    ``part`` the part it was committed as (None when not logged)."""

    result: dict
    sample_ids: list[str]
    part: int | None = None

    def labels_of(self, i: int) -> list[int]:
        """Rows of ``result["labels"]`` (and of every saliency array) that belong to image ``i``."""
        first = self.result["samples"]["sample_index"][i]
        return [r for r, s in enumerate(self.result["labels"]["sample_index"]) if s == first]


class LiveExplainer:
    """The engine, loaded once, for one configuration: explains batches of in-memory images.

    ``config`` is a :class:`~xai_core.config.RunConfig` whose ``dataset.kind`` is ``memory``
    (its ``classes`` are the model's); ``network`` an in-memory ``nn.Module`` (``model.module``)
    or ``model`` an already loaded handle to share. Calls are serialised: explainer objects keep
    per-call state."""

    def __init__(self, config: RunConfig, *, network=None, model=None):
        if config.dataset.kind != "memory":
            raise ConfigError(f"dataset.kind is {config.dataset.kind!r}; an explainer of in-memory images needs 'memory'")
        self.config = config
        self.classes = [str(c) for c in (config.dataset.classes or ())]
        if not self.classes:
            raise ConfigError("dataset.classes is empty; give the model's class names")
        self.network = network
        self.ctx = RunContext.build(config, network=network, model=model, dataset=MemoryDataset(self.classes, []))
        self._lock = threading.Lock()

    def explain(self, items: Sequence[Item], *, targets: list[list[int]] | None = None, start: int = 0,
                previous: str = "", where=None) -> tuple[Explained, MemoryDataset]:
        """Explain ``items`` (positions ``start …`` of an open-ended run; 0 alone). ``targets``:
        per image, the labels to explain instead of the configuration's label policy."""
        dataset = MemoryDataset(self.classes, items, start=start, previous=previous, where=where)
        indices = list(range(start, len(dataset)))
        with self._lock:
            self.ctx.dataset = dataset
            result = compute_part(self.ctx, 0, indices, targets=targets)
        return Explained(result, list(result["samples"]["sample_id"])), dataset


def _shifted(result: dict, offset: int) -> dict:
    """``result`` with every table's ``sample_index`` moved by ``offset`` (its place in a log)."""
    out = dict(result)
    for k, table in result.items():
        if isinstance(table, dict) and "sample_index" in table:
            out[k] = {**table, "sample_index": [int(i) + offset for i in table["sample_index"]]}
    return out


def _plain(obj):
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


class RunLog:
    """An open-ended run directory that :meth:`append` grows by one committed part per batch.

    Holds the run's lock (``.lock``) from :meth:`open` to :meth:`close`: one writer at a time,
    as for every run. Reopening an existing log checks that it was written with the same
    configuration and model (ConfigError otherwise) and continues after its last committed part.
    """

    def __init__(self, run_dir: Path, explainer: LiveExplainer, writer: RunWriter, lock: RunLock, n_samples: int,
                 next_part: int):
        self.run_dir, self.explainer, self.writer, self._lock_file = run_dir, explainer, writer, lock
        self.n_samples, self.next_part = n_samples, next_part
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="xaiboard-runlog", daemon=True)
        self._beat.start()

    @classmethod
    def open(cls, run_dir: str | Path, explainer: LiveExplainer) -> "RunLog":
        from .runner import build_manifest

        run_dir = Path(run_dir).resolve()
        make_run_dir(run_dir)
        lock = RunLock(run_dir).acquire()
        try:
            if (run_dir / "manifest.json").is_file():
                n, nxt, done = _check_reopen(run_dir, explainer)
                writer = RunWriter.reopen(run_dir)
                writer.manifest["progress"].update(total_samples=n, total_parts=nxt)
                writer.progress(n, done, force=True)  # recounted from the committed parts
            else:
                manifest = build_manifest(explainer.ctx, 0)
                manifest["open_ended"] = True
                writer = RunWriter.create(run_dir, manifest)
                n, nxt = 0, 0
            remove_temporaries(run_dir)
        except BaseException:
            lock.release()
            raise
        return cls(run_dir, explainer, writer, lock, n, nxt)

    def append(self, items: Sequence[Item], *, targets: list[list[int]] | None = None, where=None,
               computed: Explained | None = None) -> Explained:
        """Explain ``items`` and commit them as the next part; returns what was computed.
        ``computed``: what :meth:`LiveExplainer.explain` already returned for exactly these
        items (alone, ``start`` 0) with this log's explainer; committed as it is, not recomputed."""
        with self._lock:
            if self._closed.is_set():
                raise SummaryError(f"{self.run_dir}: the run log is closed")
            previous = (self.writer.manifest.get("dataset") or {}).get("sha256") or ""
            if computed is None:
                got, dataset = self.explainer.explain(items, targets=targets, start=self.n_samples, previous=previous,
                                                      where=where)
            else:
                dataset = MemoryDataset(self.explainer.classes, items, start=self.n_samples, previous=previous,
                                        where=where)
                got = Explained(_shifted(computed.result, self.n_samples), list(computed.sample_ids))
            part = self.next_part
            result = dict(got.result)
            # Computed as part 0 (its seed); stored under its place in the log.
            for table in ("samples", "labels"):
                result[table] = {**result[table], "part": [part] * len(result[table]["part"])}
            write_part(self.run_dir, part, **result)
            self.n_samples, self.next_part = len(dataset), part + 1
            self.writer.manifest["dataset"] = dataset.identity()
            self.writer.manifest["progress"].update(total_samples=self.n_samples, total_parts=self.next_part)
            self.writer.progress(self.n_samples, self.next_part, force=True)
            got.part = part
            return got

    def _heartbeat(self) -> None:
        while not self._closed.wait(HEARTBEAT_S):
            with self._lock:
                if not self._closed.is_set():
                    try:
                        self.writer.flush(force=True)
                    except SummaryError:  # a full disk: the next append reports it
                        pass

    def close(self) -> None:
        """Mark the run complete and release its lock (idempotent)."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            try:
                self.writer.finish("complete")
            finally:
                self._lock_file.release()

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_reopen(run_dir: Path, explainer: LiveExplainer) -> tuple[int, int, int]:
    """(samples, next part, committed parts) of an existing log, after checking it is one of this configuration."""
    m = read_manifest(run_dir)
    if not m.get("open_ended"):
        raise ConfigError(f"{run_dir} holds a run that is not open-ended (not written by a run log); "
                          "choose another directory to log to")
    then = _plain(m.get("config") or {})
    now = _plain(explainer.config.to_dict())
    then.pop("out", None)
    now.pop("out", None)
    diff = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
    ident = explainer.ctx.model_identity()
    diff += [f"model {k}" for k in ("module_sha256", "torchscript_sha256", "onnx_sha256", "url")
             if k in ident and (m.get("model") or {}).get(k) != ident[k]]
    if diff:
        raise ConfigError(f"{run_dir} is a run log of another configuration (its {', '.join(diff)} differ); "
                          "log to another directory")
    parts = committed_parts(run_dir)
    samples = RunReader(run_dir).samples()
    n = int(samples["sample_index"].max()) + 1 if len(samples) else 0
    return n, (max(parts) + 1 if parts else 0), len(parts)
