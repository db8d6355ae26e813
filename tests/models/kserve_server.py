"""A real KServe ModelServer serving a TorchScript classifier on 127.0.0.1, for the tests.

Runs in its own venv (``make .venv-kserve``; ``tests/models/kserve-requirements.txt``):
kserve's pins conflict with ours. Usage::

    .venv-kserve/bin/python tests/models/kserve_server.py --model-file net.pt --port 8080 \
        --name democnn [--input-size 64]

Serves two models from the same network, on both protocols KServe speaks over REST
(V1 ``/v1/models/NAME:predict``, Open Inference Protocol V2 ``/v2/models/NAME/infer``):
``NAME`` answers logits, ``NAME-probs`` answers sigmoid probabilities (to test
``model.outputs: probabilities``), ``NAME-multi`` answers two outputs, ``features`` (N, 4) and
then ``logits`` (to test ``model.output``: the first output is not the scores). The network gets what the client sent (already
normalised, (N, C, H, W) float32) and its outputs go back unchanged.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import kserve
from kserve import model_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer


class LoopbackRESTServer(RESTServer):
    """KServe 0.21 hard-codes ``host="0.0.0.0"`` in its uvicorn config; tests bind loopback only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


class TorchScriptClassifier(kserve.Model):
    def __init__(self, name: str, net, *, channels: int, size: int, probabilities: bool, multi: bool = False):
        super().__init__(name)
        self.net, self.channels, self.size, self.probabilities = net, channels, size, probabilities
        self.multi = multi
        self.ready = True

    def get_input_types(self):
        return [{"name": "pixels", "datatype": "FP32", "shape": [-1, self.channels, self.size, self.size]}]

    def get_output_types(self):
        main = {"name": "probabilities" if self.probabilities else "logits", "datatype": "FP32", "shape": [-1, -1]}
        return [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}, main] if self.multi else [main]

    def _run(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y = self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            if self.probabilities:
                y = torch.sigmoid(y)
        return y.numpy().astype(np.float32)

    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):  # V2
            y = self._run(payload.inputs[0].as_numpy())
            # The binary tensor extension when the client asks for it (``binary_data_output``).
            binary = payload.use_binary_outputs
            arrays = [y[:, :4] * 0.5 + 1.0, y] if self.multi else [y]
            outs = []
            for spec, arr in zip(self.get_output_types(), arrays):
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                out = InferOutput(name=spec["name"], shape=list(arr.shape), datatype="FP32")
                out.set_data_from_numpy(arr, binary_data=binary)
                outs.append(out)
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outs,
                                 use_binary_outputs=binary)
        return {"predictions": self._run(np.asarray(payload["instances"], dtype=np.float32)).tolist()}  # V1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-file", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="democnn")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--input-size", type=int, default=64)
    a, _ = ap.parse_known_args()
    torch.set_num_threads(1)  # the test machine's cores are shared with the client
    net = torch.jit.load(a.model_file, map_location="cpu").eval()
    models = [TorchScriptClassifier(name, net, channels=a.channels, size=a.input_size, probabilities=p, multi=m)
              for name, p, m in ((a.name, False, False), (f"{a.name}-probs", True, False),
                                 (f"{a.name}-multi", False, True))]
    model_server.RESTServer = LoopbackRESTServer
    model_server.ModelServer(http_port=a.port, enable_grpc=False, workers=1, grace_period=2).start(models)


if __name__ == "__main__":
    main()
