"""A real MLServer (Seldon's V2 inference server) serving a TorchScript classifier on 127.0.0.1,
for the tests and ``bench/remote.py``.

Runs in its own venv (``make .venv-mlserver/.installed``; ``tests/models/mlserver-requirements.txt``):
mlserver pins FastAPI / starlette versions of its own. Usage::

    .venv-mlserver/bin/python tests/models/mlserver_server.py --model-file net.pt --port 8080 --name democnn

MLServer's own server (``mlserver.MLServer``: its REST and gRPC servers, started as ``mlserver
start`` starts them) with a custom runtime (an ``MLModel``), every server bound to 127.0.0.1
(MLServer's default host is 0.0.0.0) and no metrics server. The model gets the V2 request's first
input ((N, C, H, W) float32, already normalised) and answers its logits as the output "logits".
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import numpy as np
import torch
from mlserver import MLModel, MLServer
from mlserver.codecs import NumpyCodec
from mlserver.settings import ModelParameters, ModelSettings, Settings
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor


class TorchScriptClassifier(MLModel):
    async def load(self) -> bool:
        self.net = torch.jit.load(self.settings.parameters.uri, map_location="cpu").eval()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        with torch.no_grad():
            y = self.net(torch.from_numpy(np.ascontiguousarray(x))).numpy().astype(np.float32)
        out = NumpyCodec.encode_output(name="logits", payload=y)
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[out])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-file", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="democnn")
    ap.add_argument("--input-size", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(1)  # the test machine's cores are shared with the client
    settings = Settings(host="127.0.0.1", http_port=a.port, grpc_port=free_port(), metrics_endpoint=None,
                        parallel_workers=0, debug=False, load_models_at_startup=False)
    model = ModelSettings(name=a.name, implementation=TorchScriptClassifier,
                          parameters=ModelParameters(uri=a.model_file),
                          inputs=[MetadataTensor(name="pixels", datatype="FP32", shape=[-1, 3, a.input_size, a.input_size])],
                          outputs=[MetadataTensor(name="logits", datatype="FP32", shape=[-1, -1])])
    async def serve():
        # Made inside the running loop, as `mlserver start` makes it: MLServer's constructor puts its
        # SIGTERM/SIGINT handlers (a graceful stop of its REST and gRPC servers) on the current
        # loop; made before asyncio.run they went to a loop that never runs, and a SIGTERM left
        # the gRPC server up until the tests' SIGKILL 20 s later.
        await MLServer(settings).start([model])

    asyncio.run(serve())


if __name__ == "__main__":
    main()
