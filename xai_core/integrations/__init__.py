"""Training callbacks that log explanations while a model trains (``xai_core.Monitor`` steps):
:mod:`.lightning` for PyTorch Lightning 2.x (``pip install -e .[lightning]``) and
:mod:`.transformers` for the Hugging Face ``Trainer`` (``pip install -e .[hf]``). Each is
imported only when used, so xai_core needs neither."""
