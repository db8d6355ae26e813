"""The served-model tests use the session's real KServe ModelServer (``kserve`` and
``demo_torchscript`` in ``tests/conftest.py``, shared with the explanation service's tests; see
``served.py``)."""
