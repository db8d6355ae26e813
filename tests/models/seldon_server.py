"""A real Seldon Core microservice serving a TorchScript classifier on 127.0.0.1, for the tests.

Runs in its own venv (``make .venv-seldon/.installed``; ``tests/models/seldon-requirements.txt``):
seldon-core pins Flask, numpy < 2 and protobuf 3. Usage::

    .venv-seldon/bin/python tests/models/seldon_server.py --model-file net.pt --port 9000

This is the REST server ``seldon-core-microservice MODEL`` runs in production — seldon-core's
Flask app (``seldon_core.wrapper.get_rest_microservice``, ``/api/v1.0/predictions``) in its
gunicorn application (``UserModelApplication``) — with two changes for a test machine: it binds
127.0.0.1 (the microservice hard-codes ``0.0.0.0``), and the gRPC and metrics servers the
microservice also starts on ``0.0.0.0`` are not started. The user model is a class with
``predict(X, features_names)``, as Seldon's Python wrapper expects: it gets the request's
``data.ndarray`` (already normalised (N, C, H, W) float32) and its logits go back as
``data.ndarray`` (or ``data.tensor`` when the request sent a tensor).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from seldon_core.gunicorn_utils import UserModelApplication
from seldon_core.metrics import SeldonMetrics
from seldon_core.wrapper import get_rest_microservice


class TorchScriptClassifier:
    def __init__(self, model_file: str):
        self.model_file = model_file
        self.net = None

    def load(self):  # called by the gunicorn worker, as for any Seldon Python model
        self.net = torch.jit.load(self.model_file, map_location="cpu").eval()

    def predict(self, X, features_names=None, **kwargs):
        with torch.no_grad():
            return self.net(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-file", required=True)
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)  # the test machine's cores are shared with the client
    model = TorchScriptClassifier(a.model_file)
    app = get_rest_microservice(model, SeldonMetrics(worker_id_func=os.getpid))
    UserModelApplication(app, model, False, None, "TorchScriptClassifier",
                         options={"bind": f"127.0.0.1:{a.port}", "workers": 1, "threads": 1, "timeout": 120,
                                  "loglevel": "warning", "accesslog": None}).run()


if __name__ == "__main__":
    main()
