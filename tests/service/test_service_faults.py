"""Faults on the explanation service (issue 25): a body nested too deeply, a run-log directory
that cannot be written, 50 concurrent requests (bounded, loopback only). Each is a 4xx/5xx JSON
line or a one-line refusal at start, and the service keeps serving."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import threading
from http.server import ThreadingHTTPServer

import numpy as np
import pytest
import requests

from served import MODEL, free_port
from service_helpers import SIZE, running_service, service_args
from test_service import Predictor, post
from xai_core.errors import ConfigError
from xai_core.service import BadRequest, Service, ServiceConfig
from xai_core.service.protocol import parse_json


class Rows(Predictor):
    """A real loopback predictor answering one row of 10 logits per instance."""

    def do_POST(self):  # noqa: N802
        n = len(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["instances"])
        body = json.dumps({"predictions": [[0.0] * 10] * n}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


DEEP = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_a_body_nested_too_deeply_is_a_400_line():
    with pytest.raises(BadRequest) as e:
        parse_json(DEEP)
    assert e.value.status == 400 and "nests JSON" in str(e.value) and "\n" not in str(e.value)


def test_a_log_dir_that_cannot_be_written_is_refused_at_start(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    # root ignores mode bits; /proc refuses new entries for everyone
    where = "/proc/xai-core-test-logs" if os.geteuid() == 0 else str(ro)
    ro.chmod(0o555)
    try:
        with pytest.raises(ConfigError) as e:
            Service(ServiceConfig(model_name=MODEL, predictor_host="127.0.0.1:1", classes=tuple("abc"), log_run=where))
    finally:
        ro.chmod(0o755)
    assert str(e.value).startswith(f"--log-run {where}") and len(str(e.value).splitlines()) == 1


def test_fifty_concurrent_requests_are_answered_or_turned_away_and_the_service_keeps_serving(tmp_path):
    pred = ThreadingHTTPServer(("127.0.0.1", 0), Rows)
    threading.Thread(target=pred.serve_forever, daemon=True).start()
    image = np.zeros((SIZE, SIZE, 3), np.uint8).tolist()
    try:
        args = service_args(f"127.0.0.1:{pred.server_address[1]}", free_port(), "--log-run", str(tmp_path / "logs"))
        with running_service(args, tmp_path / "service.log") as (base, proc):
            r = post(base, DEEP)
            assert r.status_code == 400 and "nests JSON" in r.json()["error"]
            with cf.ThreadPoolExecutor(50) as pool:  # 50 at once, each once: bounded
                answers = list(pool.map(lambda _: post(base, {"instances": [image]}), range(50)))
            codes = [a.status_code for a in answers]
            assert set(codes) <= {200, 503} and codes.count(200) >= 1, codes
            assert all("requests are waiting" in a.json()["error"] for a in answers if a.status_code == 503)
            assert post(base, {"instances": [image]}).status_code == 200 and proc.poll() is None
            ids = [i for a in answers if a.status_code == 200 for i in a.json()["sample_ids"]]
            assert len(set(ids)) == len(ids) == codes.count(200)  # each answered request logged once
            assert requests.get(f"{base}/v2/health/live", timeout=30).ok
    finally:
        pred.shutdown()
