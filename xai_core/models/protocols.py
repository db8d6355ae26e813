"""Served-model URLs and options, checked without importing torch, numpy or requests (the
configuration is checked before anything heavy is imported: :mod:`.spec`). The client is
:mod:`.remote`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..errors import ModelError

PROTOCOLS = ("auto", "v1", "v2", "seldon")
OUTPUTS = ("logits", "probabilities")
_V1_PATH = re.compile(r"/v1/models/[^/]+:predict$")
_V2_PATH = re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?/infer$")
_SELDON_PATH = re.compile(r"/api/v(0\.1|1\.0)/predictions$")


def detect_protocol(url: str, protocol: str = "auto") -> str:
    """"v1", "v2" or "seldon" for ``url``: explicit ``protocol`` wins, else the URL path decides."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"model.url is {url!r}; expected http://host:port/v1/models/NAME:predict, "
                         "http://host:port/v2/models/NAME/infer or http://host:port/api/v1.0/predictions")
    if protocol not in PROTOCOLS:
        raise ModelError(f"model.protocol is {protocol!r}; expected one of {PROTOCOLS}")
    if protocol != "auto":
        return protocol
    if _V1_PATH.search(parts.path):
        return "v1"
    if _V2_PATH.search(parts.path):
        return "v2"
    if _SELDON_PATH.search(parts.path):
        return "seldon"
    raise ModelError(f"model.url {url!r}: cannot tell the protocol from the path; expected "
                     ".../v1/models/NAME:predict (KServe V1), .../v2/models/NAME/infer (V2) or "
                     ".../api/v1.0/predictions (Seldon), or set model.protocol: v1|v2|seldon")


def validate_remote(spec) -> None:
    """Checks of the served-model options of a :class:`~.loading.ModelSpec`."""
    ignored = [k for k in ("weights", "factory_kwargs") if getattr(spec, k, None)]
    if ignored:
        raise ModelError(f"model.{ignored[0]} is set, but a served model (model.url) loads nothing here; "
                         f"remove {ignored[0]} or use model.factory")
    if detect_protocol(spec.url, spec.protocol) != "v2" and spec.binary_data:
        raise ModelError("model.binary_data: true is an extension of the V2 protocol; "
                         "use a .../v2/models/NAME/infer URL or set binary_data: false")
    if spec.outputs not in OUTPUTS:
        raise ModelError(f"model.outputs is {spec.outputs!r}; expected one of {OUTPUTS}")
    try:
        bad = not float(spec.timeout) > 0 or int(spec.retries) < 0 or int(spec.request_batch) < 1
    except (TypeError, ValueError):
        bad = True
    if bad:
        raise ModelError(f"model.timeout {spec.timeout} / retries {spec.retries} / request_batch {spec.request_batch}: "
                         "expected timeout > 0 s, retries ≥ 0, request_batch ≥ 1")
