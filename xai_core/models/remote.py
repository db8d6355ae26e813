"""A classifier served over HTTP: KServe V1, the Open Inference Protocol V2, or Seldon's protocol.

V1 (KServe, TensorFlow Serving): ``POST …/v1/models/NAME:predict`` with
``{"instances": [image, …]}`` → ``{"predictions": [[score, …], …]}``.
V2 (KServe, Seldon MLServer, NVIDIA Triton): ``POST …/v2/models/NAME/infer`` with
``{"id", "inputs": [{"name", "shape": [N, C, H, W], "datatype": "FP32", "data": [...]}]}`` →
``{"outputs": [{"name", "shape": [N, K], "datatype", "data": [...]}]}`` (``model.output``
names the output; unset: the only one, or the only one named logits/scores/output); Seldon
Core's microservices (``POST …/api/v1.0/predictions``): ``{"data": {"ndarray": [...]}}`` →
``{"data": {"ndarray": [[score, …], …]}}`` (or ``{"data": {"tensor": {"shape", "values"}}}``).
``GET …/v2/models/NAME`` gives the metadata recorded in the summary manifest, and the
input's name. With ``binary_data`` the V2 tensors travel as raw little-endian bytes after the
JSON header (the binary tensor extension of KServe and Triton; ``Inference-Header-Content-Length``),
which spares the JSON encoding of every pixel.

Images go out as (N, C, H, W) float32 after the user's mean/std, in requests of
``request_batch`` images. Connection errors, HTTP 5xx and 429 are retried with exponential
backoff (``backoff`` · 2^attempt seconds, or the server's ``Retry-After``); 4xx and read
time-outs are not (the same request would fail again, or keep a busy server busier), nor an
HTTP 500 that repeats with the same error text. A server refusing binary tensors at the first
request gets JSON instead (recorded as the manifest's ``model.transport``).
Every failure is one :class:`ModelError` line naming the URL.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import numpy as np
import requests

from ..errors import ModelError, ServerFailed, ServerTimeout, ServerUnreachable
from .handle import ForwardOnlyHandle
from .outputs import choose_named
from .protocols import OUTPUTS, detect_protocol

KINDS = {"v1": "remote (KServe V1)", "v2": "remote (V2)", "seldon": "remote (Seldon)"}
# V2 binary tensor extension (KServe, Triton): datatypes a classifier's output may come in.
_DTYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2"}
_HEADER_LENGTH = "Inference-Header-Content-Length"
# Probabilities are clipped before the inverse activation, so 0 and 1 give finite logits.
_PROB_EPS = 1e-7
_MAX_RETRY_AFTER_S = 30.0


def _metadata_url(url: str) -> str:
    return re.sub(r"/infer$", "", url)


def fetch_metadata(url: str, timeout: float, session=None) -> dict | None:
    """The V2 model metadata (name, versions, platform, inputs, outputs) of the model behind an
    ``…/infer`` URL, or None if the server does not answer it: it is informative, inference does
    not depend on it."""
    try:
        r = (session or requests).get(_metadata_url(url), timeout=min(float(timeout), 10.0))
        body = r.json() if r.ok else None
    except (requests.RequestException, ValueError):
        return None
    return body if isinstance(body, dict) else None


def json_array(a: np.ndarray) -> str:
    """``a`` as a (nested) JSON array text, float32-exact.

    "%.9g" round-trips every float32 and formats three times as fast as ``json.dumps`` of the
    float64 reprs (the encoding dominated a request: 14 ms of a 25 ms image on loopback)."""
    if a.ndim == 0:
        return "%.9g" % float(a)
    if 0 in a.shape:
        return json.dumps(a.tolist())
    rows = a.reshape(-1, a.shape[-1])
    template = "[" + ",".join(["%.9g"] * a.shape[-1]) + "]"
    parts = [template % tuple(r) for r in rows.tolist()]
    for dim in reversed(a.shape[:-1]):
        parts = ["[" + ",".join(parts[i : i + dim]) + "]" for i in range(0, len(parts), dim)]
    return parts[0]


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _connection_reason(err: Exception) -> str:
    # requests' texts nest three exception reprs; the errno text is what a user needs.
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection broke in the middle of the answer"
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(err))
    return m.group(1).strip() if m else type(err).__name__


def _server_error_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return _short(resp.text) or resp.reason or ""
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if key in body:
                return _short(str(body[key]).splitlines()[0] if str(body[key]) else "")
    return _short(json.dumps(body))


class RemoteHandle(ForwardOnlyHandle):
    """A served classifier behind ``url`` (see the module docstring for the wire formats).

    ``outputs``: "logits", or "probabilities" (sigmoid or softmax outputs, turned back into
    logits so that :meth:`activate` gives them back: ``log p − log(1 − p)`` for sigmoid,
    ``log p`` for softmax, with p clipped to [1e-7, 1 − 1e-7]).
    """

    def __init__(self, url: str, *, protocol: str = "auto", activation: str, input_size: tuple[int, int],
                 num_classes: int, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), outputs: str = "logits",
                 timeout: float = 30.0, retries: int = 3, request_batch: int = 32, binary_data: bool = False,
                 backoff: float = 0.5, output: str | int | None = None):
        super().__init__(activation=activation, input_size=input_size, num_classes=num_classes, channels=len(mean))
        self.url = url
        self.protocol = detect_protocol(url, protocol)
        self.kind = KINDS[self.protocol]
        if outputs not in OUTPUTS:
            raise ModelError(f"model.outputs is {outputs!r}; expected one of {OUTPUTS}")
        self.outputs, self.timeout, self.retries = outputs, float(timeout), int(retries)
        self.request_batch, self.backoff = int(request_batch), float(backoff)
        self.binary_data = bool(binary_data) and self.protocol == "v2"
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        self.requests = 0  # HTTP requests sent, retries included
        self.waits: list[float] = []  # seconds slept before each retry, in order (backoff or Retry-After)
        self.output = output  # model.output: which V2 output holds the scores (models/outputs.py)
        self.output_choice: dict | None = None
        # How requests travel when binary tensors were asked for (manifest model.transport):
        # {"binary_data": used or not, "requested": True, "reason": why JSON is used instead}.
        self.transport: dict | None = {"binary_data": True, "requested": True} if self.binary_data else None
        self._session = requests.Session()
        self._input_name = "input-0"
        self.metadata = fetch_metadata(url, self.timeout, self._session) if self.protocol == "v2" else None
        if self.metadata:
            inputs = self.metadata.get("inputs") or [{}]
            self._input_name = str(inputs[0].get("name") or self._input_name)

    # --- wire -------------------------------------------------------------------------------

    def _post(self, payload: bytes, headers: dict | None = None) -> requests.Response:
        """POST with retries; returns a 2xx response or raises ModelError."""
        attempts = self.retries + 1
        previous = None
        for attempt in range(attempts):
            last = attempt == attempts - 1
            self.requests += 1
            try:
                r = self._session.post(self.url, data=payload, timeout=self.timeout,
                                       headers=headers or {"Content-Type": "application/json"})
            # ConnectTimeout included; a connection broken in the middle of the answer (the server
            # died while sending it: ChunkedEncodingError) is the same failure, seen later.
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                if last:
                    raise ServerUnreachable(f"model server {self.url} is unreachable ({_connection_reason(e)}) after "
                                     f"{attempts} attempt(s); start it or fix model.url") from e
                self._sleep(attempt, None)
                continue
            except requests.exceptions.Timeout as e:
                raise ServerTimeout(f"model server {self.url} did not answer within {self.timeout:g} s; "
                                 "raise model.timeout or lower model.request_batch") from e
            except requests.RequestException as e:
                raise ServerUnreachable(f"model server {self.url}: request failed ({_short(e)})") from e
            if r.ok:
                return r
            retryable = r.status_code >= 500 or r.status_code == 429
            answer = (r.status_code, _server_error_text(r) or r.reason)
            # The same HTTP 500 twice is a request the server cannot serve (MLServer 1.7 failing to
            # decode a binary body), not a passing failure: retrying it only delays the error.
            # 502/503/504 and 429 (a model loading, a gateway, a busy server) keep their retries.
            same = r.status_code == 500 and answer == previous
            if not retryable or last or same:
                after = (" twice with the same error" if same else
                         f" after {attempts} attempts" if retryable and attempts > 1 else "")
                raise ServerFailed(f"model server {self.url} answered HTTP {r.status_code}{after}: {answer[1]}")
            previous = answer
            self._sleep(attempt, r.headers.get("Retry-After"))
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2 ** attempt
        try:
            delay = max(delay, min(float(retry_after), _MAX_RETRY_AFTER_S)) if retry_after else delay
        except ValueError:  # an HTTP date: fall back to our own backoff
            pass
        self.waits.append(delay)
        time.sleep(delay)

    def _request(self, x: np.ndarray) -> np.ndarray:
        """One request for a (n, C, H, W) float32 chunk → (n, K) raw outputs."""
        n = x.shape[0]
        headers = None
        if self.protocol == "v1":
            body = ('{"instances": %s}' % json_array(x)).encode()
        elif self.protocol == "seldon":
            body = ('{"data": {"ndarray": %s}}' % json_array(x)).encode()
        elif self.binary_data:
            raw = x.astype("<f4", copy=False).tobytes()
            head = json.dumps({"id": uuid.uuid4().hex, "parameters": {"binary_data_output": True},
                               "inputs": [{"name": self._input_name, "shape": list(x.shape), "datatype": "FP32",
                                           "parameters": {"binary_data_size": len(raw)}}]}).encode()
            body, headers = head + raw, {"Content-Type": "application/octet-stream", _HEADER_LENGTH: str(len(head))}
        else:
            head = json.dumps({"name": self._input_name, "shape": list(x.shape), "datatype": "FP32"})
            body = ('{"id": %s, "inputs": [%s, "data": %s}]}' % (json.dumps(uuid.uuid4().hex), head[:-1],
                                                                 json_array(x.ravel()))).encode()
        try:
            r = self._post(body, headers)
        except ServerFailed as e:
            if not self.binary_data:
                raise
            raise ServerFailed(f"{e}; the server may not support V2 binary tensors: set model.binary_data: false") from e
        expected = {"v1": '{"predictions": [[K numbers] per image]}',
                    "seldon": '{"data": {"ndarray": [[K numbers] per image]}} or {"data": {"tensor": {"shape", "values"}}}',
                    "v2": '{"outputs": [{"shape": [N, K], "data": [N*K numbers]}]}'}[self.protocol]
        try:
            if self.protocol == "v1":
                out = np.asarray(r.json()["predictions"], dtype=np.float32)
            elif self.protocol == "seldon":
                out = _seldon_output(r.json())
            else:
                out = self._v2_output(r)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ServerFailed(f"model server {self.url} sent a malformed response: expected {expected}; "
                             f"got {_short(r.content[:400].decode('utf-8', 'replace'), 120)!r}") from e
        if out.shape != (n, self.num_classes):
            raise ModelError(f"model server {self.url} returned outputs of shape {tuple(out.shape)} for {n} image(s); "
                             f"expected ({n}, {self.num_classes}), one score per class of the dataset")
        return out

    def _v2_output(self, r: requests.Response) -> np.ndarray:
        """The selected output of a V2 answer (``model.output``; unset: the only one, or the only
        one named logits/scores/output — ``outputs.choose_named``): JSON ``data``, or raw bytes
        after the JSON header when the server used the binary extension
        (``Inference-Header-Content-Length``)."""
        length = r.headers.get(_HEADER_LENGTH)
        head = r.json() if length is None else json.loads(r.content[: int(length)])
        outputs = head["outputs"]
        choice = choose_named([o.get("name", f"output-{i}") for i, o in enumerate(outputs)], self.output,
                              f"model server {self.url}")
        self.output_choice = choice.describe()
        k = [o.get("name", f"output-{i}") for i, o in enumerate(outputs)].index(choice.selector)
        chosen = outputs[k]
        size = (chosen.get("parameters") or {}).get("binary_data_size")
        if length is None or size is None:  # JSON data (the output came as JSON after all)
            return np.asarray(chosen["data"], dtype=np.float32).reshape(chosen["shape"])
        # Binary outputs follow the header in order: skip those before the chosen one.
        start = int(length) + sum(int((o.get("parameters") or {}).get("binary_data_size") or 0) for o in outputs[:k])
        raw = r.content[start : start + int(size)]
        return np.frombuffer(raw, dtype=_DTYPES[chosen["datatype"]]).reshape(chosen["shape"]).astype(np.float32)

    # --- ForwardOnlyHandle -----------------------------------------------------------------

    def _forward(self, x: np.ndarray) -> np.ndarray:
        x = ((x - self.mean) / self.std).astype(np.float32, copy=False)
        outs = [self._request(x[i : i + self.request_batch]) for i in range(0, x.shape[0], self.request_batch)]
        out = np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)
        return self._to_logits(out)

    def _to_logits(self, out: np.ndarray) -> np.ndarray:
        if self.outputs == "logits":
            return out
        if out.size and (np.nanmin(out) < -1e-6 or np.nanmax(out) > 1 + 1e-6):
            raise ModelError(f"model server {self.url} returned values in [{np.nanmin(out):.3g}, {np.nanmax(out):.3g}]; "
                             "expected probabilities in [0, 1] (model.outputs: probabilities); "
                             "if it returns logits, set model.outputs: logits")
        p = np.clip(out.astype(np.float64), _PROB_EPS, 1 - _PROB_EPS)
        logits = np.log(p) - np.log1p(-p) if self.activation == "sigmoid" else np.log(p)
        return logits.astype(np.float32)

def _seldon_output(body: dict) -> np.ndarray:
    """The scores of a Seldon answer: ``data.ndarray`` or ``data.tensor`` (shape + flat values)."""
    data = body["data"]
    if "ndarray" in data:
        return np.asarray(data["ndarray"], dtype=np.float32)
    t = data["tensor"]
    return np.asarray(t["values"], dtype=np.float32).reshape(t["shape"])


def load_remote(spec, num_classes: int) -> RemoteHandle:
    """The :class:`RemoteHandle` of ``spec`` after a one-image probe of the output shape."""
    handle = RemoteHandle(spec.url, protocol=spec.protocol, activation=spec.activation,
                          input_size=tuple(spec.input_size), num_classes=num_classes, mean=spec.mean, std=spec.std,
                          outputs=spec.outputs, timeout=spec.timeout, retries=spec.retries,
                          request_batch=spec.request_batch, binary_data=spec.binary_data,
                          output=getattr(spec, "output", None))
    probe = np.zeros((1, len(spec.mean), *spec.input_size), np.float32)
    try:
        out = handle._forward(probe)  # not counted in ``passes``: it is a check, not work
    except ServerFailed as e:
        if not handle.binary_data:
            raise
        # Not every V2 server has the binary tensor extension (MLServer 1.7's REST server does
        # not): when JSON works, the run uses JSON and the manifest says why.
        handle.binary_data = False
        try:
            out = handle._forward(probe)
        except ModelError:
            raise e from None
        handle.transport = {"binary_data": False, "requested": True,
                            "reason": f"the server refused a binary request ({str(e.__cause__ or e)[:300]}); JSON used"}
    if not np.all(np.isfinite(out)):
        raise ModelError(f"model server {spec.url} returned non-finite outputs for a black image")
    return handle


def remote_identity(spec) -> dict:
    """What the summary manifest records: the URL, and the V2 metadata if the server answers."""
    ident = {"url": spec.url, "protocol": detect_protocol(spec.url, spec.protocol), "outputs": spec.outputs}
    meta = fetch_metadata(spec.url, spec.timeout) if ident["protocol"] == "v2" else None
    if meta:
        ident["server_model"] = meta
    return ident
