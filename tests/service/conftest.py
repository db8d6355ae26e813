"""The explanation service (``xai-core explainer``) on 127.0.0.1, started once per session in front
of the session's real KServe ModelServer, with a run log (helpers: ``service_helpers.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from served import free_port  # noqa: E402
from service_helpers import running_service, service_args  # noqa: E402


@pytest.fixture(scope="session")
def service_logdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served-explanations")


@pytest.fixture(scope="session")
def service(kserve, service_logdir, tmp_path_factory):
    """(base URL, process) of the service logging to ``service_logdir``, with small caps so the
    bad requests stay small: 4 instances, 128×128 pixels, 1 MiB bodies, 2,000 passes."""
    args = service_args(kserve.base.removeprefix("http://"), free_port(), "--log-run", str(service_logdir),
                        "--max-instances", "4", "--max-pixels", str(128 * 128), "--max-body-mb", "1",
                        "--max-passes", "2000", "--metrics", "deletion_auc")
    with running_service(args, tmp_path_factory.mktemp("service") / "service.log") as got:
        yield got
