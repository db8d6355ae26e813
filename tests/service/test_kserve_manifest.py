"""docs/kserve/inferenceservice.yaml stays in step with the CLI: it parses, and its explainer's
arguments make a service configuration that `xai-core explainer` accepts (explainers, parameters,
classes), without deploying anything."""

from __future__ import annotations

from pathlib import Path

import yaml

from xai_core.cli import _service_config, build_parser
from xai_core.service import Service

DOC = Path(__file__).resolve().parents[2] / "docs" / "kserve" / "inferenceservice.yaml"


def test_inference_service_manifest_runs_our_explainer():
    isvc = yaml.safe_load(DOC.read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    container = isvc["spec"]["explainer"]["containers"][0]
    assert container["command"] == ["xai-core"]
    args = build_parser().parse_args(container["args"])
    assert args.func.__name__ == "_cmd_explainer" and args.model_name == isvc["metadata"]["name"]
    assert args.predictor_host == f"{isvc['metadata']['name']}-predictor.default"
    assert args.protocol == isvc["spec"]["predictor"]["model"]["protocolVersion"]
    config = _service_config(args)
    service = Service(config)  # explainers and parameters checked as at start-up (no predictor needed)
    assert service.names == ["occlusion", "anchors"] and config.log_run == "/mnt/explanations"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert config.log_run in mounts
