"""The explanation service: a small ASGI app (starlette, served by uvicorn) speaking KServe's
explainer protocol beside a predictor.

* ``POST /v1/models/NAME:explain`` — explain the request's images (:mod:`.protocol`) with the
  runner's engine through the predictor at ``--predictor-host`` (the served-model client of
  :mod:`xai_core.models.remote`), and with ``--log-run`` append them to a run (:mod:`xai_core.append`).
* ``POST /v1/models/NAME:predict`` and ``POST /v2/models/NAME/infer`` — forwarded to the
  predictor unchanged, so the service can stand in KServe's explainer slot.
* ``GET /v1/models/NAME``, ``/v2/models/NAME/ready``, ``/v2/health/ready`` — ready once the
  predictor answers (503 with the reason before); ``/v2/health/live``, ``/`` — alive.

Errors are ``{"error": "one line"}``: 400 for a bad request, 413 for a body over the cap, 404 for
another model name, 502 when the predictor is down or answers an error, 504 when it is too slow,
503 when too many requests wait; anything unexpected is a 500 line, and the service keeps serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DatasetError, ServerTimeout, XaiError
from .protocol import BadRequest, ExplainRequest, Limits, dumps, error_body, parse_json, parse_request, passes_per_label

_FORWARD_HEADERS = ("content-type", "inference-header-content-length")


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


# ---- HTTP -----------------------------------------------------------------------------------


def create_app(config: ServiceConfig):
    """The starlette app of :class:`Service` ``config``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    service = Service(config)
    name = config.model_name

    def reply(obj, status: int = 200) -> Response:
        return Response(obj if isinstance(obj, bytes) else json.dumps(obj).encode(), status_code=status,
                        media_type="application/json")

    def fail(message: str, status: int) -> Response:
        return Response(error_body(message), status_code=status, media_type="application/json")

    def check_name(request):
        got = request.path_params["name"]
        return None if got == name else fail(f"model {got!r} is not served here; this service explains {name!r}", 404)

    async def read_body(request) -> bytes:
        cap = config.limits.max_body_bytes
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cap:
            raise BadRequest(f"the body is {int(length):,} bytes; the cap is {cap:,}", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise BadRequest(f"the body is over the cap of {cap:,} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def explain(request):
        if (bad := check_name(request)) is not None:
            return bad
        try:
            body = await read_body(request)
            req = await run_in_threadpool(  # decoding images is work: off the event loop
                lambda: parse_request(parse_json(body), explainers=service.names, classes=list(config.classes),
                                      limits=config.limits, param_checker=service.check_params))
        except BadRequest as e:
            return fail(str(e), e.status)
        with service._state:
            if service._waiting >= config.max_waiting:
                return Response(error_body(f"{service._waiting} requests are waiting; try again later"), 503,
                                headers={"Retry-After": "5"}, media_type="application/json")
            service._waiting += 1
        try:
            answer = await run_in_threadpool(service.explain, req)
            return reply(await run_in_threadpool(dumps, answer))
        except BadRequest as e:
            return fail(str(e), e.status)
        except (ConfigError, DatasetError) as e:
            return fail(str(e), 400)
        except ServerTimeout as e:
            return fail(f"the predictor timed out: {e}", 504)
        except XaiError as e:  # the predictor down, answering an error, a malformed answer
            return fail(f"the predictor failed: {e}", 502)
        except Exception as e:  # noqa: BLE001 - the service keeps serving; the line says what broke
            return fail(f"internal error: {type(e).__name__}: {str(e)[:300]}", 500)
        finally:
            with service._state:
                service._waiting -= 1

    async def forward(request):
        """The predictor's own endpoints, passed through unchanged."""
        import requests

        if (bad := check_name(request)) is not None:
            return bad
        try:
            body = await read_body(request)
        except BadRequest as e:
            return fail(str(e), e.status)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD_HEADERS}
        url = f"{config.base}{request.url.path}"
        try:
            r = await run_in_threadpool(requests.post, url, data=body, headers=headers, timeout=config.timeout)
        except requests.exceptions.Timeout:
            return fail(f"the predictor {url} did not answer within {config.timeout:g} s", 504)
        except requests.RequestException as e:
            return fail(f"the predictor {url} is unreachable ({type(e).__name__})", 502)
        out = {k: v for k, v in r.headers.items() if k.lower() in _FORWARD_HEADERS}
        return Response(r.content, status_code=r.status_code, headers=out)

    async def model_ready(request):
        if (bad := check_name(request)) is not None:
            return bad
        ok, why = await run_in_threadpool(service.ready)
        return reply({"name": name, "ready": ok, **({"error": why} if why else {})}, 200 if ok else 503)

    async def health_ready(request):
        ok, why = await run_in_threadpool(service.ready)
        return reply({"ready": ok, **({"error": why} if why else {})}, 200 if ok else 503)

    async def live(request):
        return reply({"live": True})

    async def models(request):
        return reply({"models": [name]})

    async def root(request):
        return reply({"status": "alive"})

    routes = [
        Route("/", root), Route("/v2/health/live", live), Route("/v2/health/ready", health_ready),
        Route("/v1/models", models), Route("/v1/models/{name}", model_ready),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v1/models/{name}:explain", explain, methods=["POST"]),
        Route("/v1/models/{name}:predict", forward, methods=["POST"]),
        Route("/v2/models/{name}/infer", forward, methods=["POST"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(service.close)  # the run logs are marked complete, their locks released

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def serve_service(config: ServiceConfig, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the service with uvicorn until Ctrl-C / SIGTERM (then the run logs are closed)."""
    import uvicorn

    app = create_app(config)  # bad explainers, metrics or parameters: one line before the port opens
    print(f"xaiboard explainer for {config.model_name!r} (predictor {config.predictor_url}) on http://{host}:{port}",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
