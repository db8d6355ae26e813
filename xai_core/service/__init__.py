"""The explanation service (``xai-core explainer``): KServe's explainer protocol beside a
predictor, on starlette + uvicorn. :mod:`.protocol` is the wire format (parsing, bounds, answers),
:mod:`.service` the state (predictor, engines, run logs), :mod:`.app` the ASGI app."""

from .app import Service, ServiceConfig, create_app, serve_service
from .protocol import BadRequest, Limits

__all__ = ["BadRequest", "Limits", "Service", "ServiceConfig", "create_app", "serve_service"]
