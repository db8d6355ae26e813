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
import json

from ..errors import ConfigError, DatasetError, ServerTimeout, SummaryError, XaiError
from .protocol import BadRequest, dumps, error_body, parse_json, parse_request
from .service import Service, ServiceConfig

_FORWARD_HEADERS = ("content-type", "inference-header-content-length")


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
        except Exception as e:  # noqa: BLE001 - a request the checks did not foresee: one line, keep serving
            return fail(f"internal error while reading the request: {type(e).__name__}: {str(e)[:300]}", 500)
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
        except SummaryError as e:  # --log-run: the run log cannot be written (disk full, permissions)
            return fail(f"the explanation was computed but cannot be logged: {e}", 500)
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

    async def internal(request, exc):  # whatever escapes a route is still one JSON line
        return fail(f"internal error: {type(exc).__name__}: {str(exc)[:300]}", 500)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: internal})
    app.state.service = service
    return app


def serve_service(config: ServiceConfig, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the service with uvicorn until Ctrl-C / SIGTERM (then the run logs are closed)."""
    import uvicorn

    app = create_app(config)  # bad explainers, metrics or parameters: one line before the port opens
    print(f"xaiboard explainer for {config.model_name!r} (predictor {config.predictor_url}) on http://{host}:{port}",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
