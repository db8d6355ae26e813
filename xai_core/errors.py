"""Typed errors. Every message says what was received, what was expected and what to do.

Pages and the CLI catch :class:`XaiError` in one place and show ``str(err)`` to the user,
never a traceback.
"""

import os
from contextlib import contextmanager


class XaiError(Exception):
    """Base class for every error xaiboard raises on purpose."""


class ConfigError(XaiError):
    """The run configuration (YAML, CLI overrides) is invalid."""


class DatasetError(XaiError):
    """A dataset item (image, label, box, mask) is missing or malformed."""


class ModelError(XaiError):
    """The model could not be loaded or does not behave as declared."""


class ExplainerError(XaiError):
    """An explainer was misconfigured or failed on an input."""


class MetricError(XaiError):
    """A metric was misconfigured or failed on an input."""


class SummaryError(XaiError):
    """A summary directory is missing, corrupt or unreadable."""


class FormatVersionError(SummaryError):
    """A summary was written by a newer xaiboard than the one reading it."""


class RegistryError(XaiError):
    """A name is unknown to, or registered twice in, a registry."""


class ServerUnreachable(ModelError):
    """A model server (``model.url``, an explainer service's predictor) cannot be reached."""


class ServerTimeout(ModelError):
    """A model server did not answer in time."""


class ServerFailed(ModelError):
    """A model server answered with an HTTP error or a malformed answer."""


@contextmanager
def one_line_errors():
    """Our errors surface as their one line: the chain (pyarrow, torch internals) only with
    XAI_DEBUG (the Python API's entry points, ``xai_core.explain`` and ``open_run``)."""
    try:
        yield
    except XaiError as e:
        if os.environ.get("XAI_DEBUG"):
            raise
        raise type(e)(str(e)) from None
