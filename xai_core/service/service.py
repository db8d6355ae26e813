"""The explanation service's state, without HTTP: :class:`ServiceConfig` (what ``xai-core
explainer`` serves) and :class:`Service` (the predictor handle, one engine per explanation
configuration, the run logs of ``--log-run``, and the answer of one request). :mod:`.app` puts
it behind HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, XaiError
from .protocol import ExplainRequest, Limits, passes_per_label


@dataclass(frozen=True)
class ServiceConfig:
    """What ``xai-core explainer`` serves. ``explainers``/``metrics`` are run-configuration
    entries (names or ``{type, name, params}``); ``classes`` the predictor's class names."""

    model_name: str
    predictor_host: str
    classes: tuple[str, ...]
    explainers: tuple = ("occlusion",)
    metrics: tuple = ()
    protocol: str = "v1"
    activation: str = "softmax"
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    outputs: str = "logits"
    resize: str = "stretch"
    top_k: int = 1
    seed: int = 0
    timeout: float = 30.0
    retries: int = 1
    request_batch: int = 32
    binary_data: bool = False
    log_run: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_waiting: int = 8

    @property
    def base(self) -> str:
        host = self.predictor_host.rstrip("/")
        return host if host.startswith(("http://", "https://")) else f"http://{host}"

    @property
    def predictor_url(self) -> str:
        return (f"{self.base}/v1/models/{self.model_name}:predict" if self.protocol == "v1"
                else f"{self.base}/v2/models/{self.model_name}/infer")

    def run_config(self, explainers: list) -> dict:
        return {
            "model": {"url": self.predictor_url, "protocol": self.protocol, "outputs": self.outputs,
                      "activation": self.activation, "input_size": list(self.input_size), "mean": list(self.mean),
                      "std": list(self.std), "timeout": self.timeout, "retries": self.retries,
                      "request_batch": self.request_batch, "binary_data": self.binary_data},
            "dataset": {"kind": "memory", "classes": list(self.classes), "resize": self.resize},
            "explainers": explainers, "metrics": list(self.metrics), "labels": {"top_k": self.top_k},
            "seed": self.seed,
        }


def check_log_dir(path: str) -> None:
    """``--log-run`` must be a directory this process can write (made when missing), so a
    read-only one is one line before the port opens, not an error on every request."""
    from ..summary.writer import make_run_dir

    try:
        make_run_dir(Path(path))
    except XaiError as e:
        raise ConfigError(f"--log-run {path}: {e}") from e
    try:  # mode bits do not tell (root, read-only mounts, /proc): try what a run log does
        os.rmdir(tempfile.mkdtemp(prefix=".xai-write-test-", dir=path))
    except OSError as e:
        raise ConfigError(f"--log-run {path}: cannot create a run log there ({e.strerror or e}); expected a "
                          "directory the service may write (fix its permissions or choose another)") from e


def _entries(explainers) -> list[dict]:
    return [{"type": e, "name": e, "params": {}} if isinstance(e, str)
            else {"type": e["type"], "name": e.get("name") or e["type"], "params": dict(e.get("params") or {})}
            for e in explainers]


class Service:
    """The service's state: the predictor handle, one engine per explanation configuration
    (explainers × parameters) and, with ``log_run``, one run log per configuration."""

    def __init__(self, config: ServiceConfig):
        from ..config import config_from_dict
        from ..engine import check_capabilities

        self.config = config
        self.entries = _entries(config.explainers)
        self.names = [e["name"] for e in self.entries]
        self._default_key = self._key(None)[0]  # the key of the service's own explainers and parameters
        base = config_from_dict(config.run_config(self.entries))  # bad explainers/metrics: one line, at start
        exps, _ = base.instantiate()
        check_capabilities(None, base, exps)  # a served predictor answers forward passes only
        self._classes = {e.instance_name: type(e) for e in exps}
        if config.log_run:
            check_log_dir(config.log_run)
        self._handle = None
        self._engines: dict[str, object] = {}
        self._logs: dict[str, object] = {}
        self._lock = threading.Lock()       # one explanation at a time (explainer objects hold state)
        self._state = threading.Lock()      # the engines, logs and waiting count (held briefly)
        self._connect = threading.Lock()    # making the predictor handle (a network probe)
        self._waiting = 0
        self.predictor_error: str | None = None

    # ---- the predictor ------------------------------------------------------------------
    def predictor(self):
        """The served-model handle, made (one probe request) on first use; ModelError until the
        predictor answers."""
        with self._connect:
            if self._handle is None:
                from ..config import config_from_dict
                from ..models.remote import load_remote

                spec = config_from_dict(self.config.run_config(self.entries)).model
                try:
                    self._handle = load_remote(spec, len(self.config.classes))
                    self.predictor_error = None
                except XaiError as e:
                    self.predictor_error = str(e)
                    raise
            return self._handle

    def ready(self) -> tuple[bool, str | None]:
        try:
            self.predictor()
            return True, None
        except XaiError as e:
            return False, str(e)

    # ---- explanations ---------------------------------------------------------------------
    def check_params(self, name: str, params: dict) -> None:
        """The explainer's own parameter checks, then the service's cost bound."""
        merged = {**next(e["params"] for e in self.entries if e["name"] == name), **params}
        exp = self._classes[name](merged, instance_name=name)
        h, w = self.config.input_size
        cost = passes_per_label(exp, h, w)
        if cost > self.config.limits.max_passes:
            raise XaiError(f"these parameters cost {cost:,} model passes per image and label; the cap is "
                           f"{self.config.limits.max_passes:,}")

    def _key(self, req: ExplainRequest | None) -> tuple[str, list]:
        """(configuration key, explainer entries) of a request (None: the service's own)."""
        entries = self.entries if req is None else [
            {**e, "params": {**e["params"], **req.params.get(e["name"], {})}}
            for e in self.entries if e["name"] in req.explainers]
        text = json.dumps(entries, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8], entries

    def engine(self, key: str, entries: list):
        from ..append import LiveExplainer
        from ..config import config_from_dict

        handle = self.predictor()
        with self._state:
            if key not in self._engines:
                self._engines[key] = LiveExplainer(config_from_dict(self.config.run_config(entries)), model=handle)
            return self._engines[key]

    def log(self, key: str, engine, default: bool):
        from ..append import RunLog

        with self._state:
            if key not in self._logs:
                name = self.config.model_name if default else f"{self.config.model_name}-{key}"
                self._logs[key] = RunLog.open(Path(self.config.log_run) / name, engine)
            return self._logs[key]

    def explain(self, req: ExplainRequest) -> dict:
        from ..data.memory import Item

        key, entries = self._key(req)
        default = key == self._default_key
        engine = self.engine(key, entries)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        tag = f"{stamp}-{uuid.uuid4().hex[:6]}"
        items = [Item(im, id=f"{tag}-{i}", source=f":explain {req.id or tag} instance {i}")
                 for i, im in enumerate(req.images)]
        if req.labels is not None:
            targets = [list(req.labels)] * len(items)
        else:
            k = req.top_k or self.config.top_k
            targets = lambda probs: [list(np.argsort(-p, kind="stable")[:k]) for p in probs]  # noqa: E731
        where = lambda i: f"instances[{i}]"  # noqa: E731
        with self._lock:
            if self.config.log_run:
                log = self.log(key, engine, default)
                got = log.append(items, targets=targets, where=where)
                logged = {"run": str(log.run_dir), "part": got.part}
            else:
                got, _ = engine.explain(items, targets=targets, where=where)
                logged = None
            return self.answer(req, got, engine, logged)

    def answer(self, req: ExplainRequest, got, engine, logged) -> dict:
        res = got.result
        lab, det, sc = res["labels"], res.get("details") or {}, res["scores"]
        exps = {e.instance_name: e for e in engine.ctx.explainers}
        explanations = []
        for i, sidx in enumerate(res["samples"]["sample_index"]):
            rows = []
            for r in got.labels_of(i):
                label = int(lab["label"][r])
                entry = {"label": label, "class": self.config.classes[label], "probability": float(lab["prob"][r]),
                         "predicted": bool(lab["is_pred"][r]),
                         "maps": {n: res["saliency"][n][r] for n in exps}}
                for n, e in exps.items():
                    if e.name == "anchors":
                        entry.setdefault("anchor", {})[n] = _anchor(e, res["images"][i], res["saliency"][n][r], det,
                                                                    sidx, label, n)
                scores = {}
                for s, l, e, m, v in zip(sc["sample_index"], sc["label"], sc["explainer"], sc["metric"], sc["score"]):
                    if s == sidx and l in (label, -1):
                        scores.setdefault(e, {})[m] = v
                if scores:
                    entry["scores"] = scores
                rows.append(entry)
            explanations.append({"predictions": np.asarray(res["samples"]["probs"][i], dtype=np.float32),
                                 "labels": rows})
        meta = {"explainers": [{"name": e.instance_name, "type": e.name, "signed": bool(e.is_signed),
                                "params": _plain(e.params)} for e in exps.values()],
                "input_size": list(self.config.input_size), "activation": self.config.activation,
                "classes": len(self.config.classes)}
        if logged:
            meta["log"] = logged
        return {"model_name": self.config.model_name, "id": req.id, "sample_ids": got.sample_ids,
                "explanations": explanations, "meta": meta}

    def close(self) -> None:
        with self._state:
            logs, self._logs = list(self._logs.values()), {}
        for log in logs:
            log.close()


def _plain(params) -> dict:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(params).items()}


def _anchor(exp, image: np.ndarray, mask: np.ndarray, det: dict, sidx, label: int, name: str) -> dict:
    """alibi AnchorImages' answer for one map: the superpixels, the anchor's ids, precision, coverage."""
    import torch

    seg = exp.segment(torch.from_numpy(image).permute(2, 0, 1).float().div(255.0))
    info = {k: v for s, l, e, k, v in zip(det.get("sample_index", []), det.get("label", []), det.get("explainer", []),
                                           det.get("key", []), det.get("value", [])) if s == sidx and l == label and e == name}
    return {"segments": seg.astype(np.int32), "anchor": sorted(int(x) for x in np.unique(seg[mask > 0.5])),
            "precision": info.get("precision"), "coverage": info.get("coverage"), "found": bool(info.get("found", 0))}
