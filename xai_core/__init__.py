"""xaiboard core: runs explainers and evaluation metrics over an image classifier
and writes a summary directory that the dashboard reads.

This package never imports Streamlit; the pages import only this package. The Python API
(:mod:`xai_core.api`: ``explain``, ``open_run``, ``serve``, ``Run``; :mod:`xai_core.monitor`:
``Monitor``) is re-exported lazily, so
``import xai_core`` stays light (no torch until one of them is used).
"""

__version__ = "0.1.0"

_API = {"explain": "api", "open_run": "api", "serve": "api", "Run": "runview", "Monitor": "monitor"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
