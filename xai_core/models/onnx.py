"""ONNX models served through ONNX Runtime (``model: {onnx: file.onnx}``).

An :class:`OnnxHandle` answers forward passes only: perturbation explainers, perturbation
metrics and counterfactuals work; gradient explainers, MC dropout and the randomisation check
are refused up front (:func:`xai_core.engine.check_capabilities`). The file must map
normalised (N, C, H, W) float32 to (N, K) logits, like a ``factory`` network; ``mean``/``std``
are applied here, so explainers see [0, 1] pixels as for every other kind of model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from .handle import ForwardOnlyHandle
from .outputs import choose_named

ZIP_MAGIC = b"PK\x03\x04"  # torch.save / torch.jit.save archives
PICKLE_MAGIC = 0x80  # legacy torch.save (pickle protocol ≥ 2)


def session_options(threads: int | None = None, *, optimize: bool = True):
    """ONNX Runtime options shared by ONNX models and the fast forward path: as many intra-op
    threads as torch uses (the run's CPU budget), one inter-op thread, no spinning (threads that
    spin between calls take the cores from torch's gradient passes that run in between).
    ``optimize=False`` turns off ONNX Runtime's graph rewrites (operator fusions), which change
    the rounding; the fast path uses it to reproduce torch's numbers."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = max(1, int(threads or torch.get_num_threads()))
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def cpu_session(model, threads: int | None = None, *, optimize: bool = True):
    """An ``InferenceSession`` on the CPU for a file path or serialised model bytes."""
    import onnxruntime as ort

    src = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(src, session_options(threads, optimize=optimize), providers=["CPUExecutionProvider"])


def file_kind(path: str | Path) -> str:
    """What a model file is, from its content: "onnx", "zip" (TorchScript or torch.save),
    "pickle" (legacy torch.save) or "unknown"."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == ZIP_MAGIC:
        return "zip"
    if head[:1] and head[0] == PICKLE_MAGIC:
        return "pickle"
    try:
        import onnx

        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # not a protobuf, or not a ModelProto
        return "unknown"
    # Almost any bytes parse as *some* protobuf; a real model has a version and graph nodes.
    return "onnx" if proto.ir_version > 0 and len(proto.graph.node) > 0 else "unknown"


def refuse_onnx_file(path: str | Path, key: str) -> None:
    """Raise a one-line ModelError when ``model.<key>`` (torchscript, weights) is an ONNX file."""
    if Path(path).is_file() and file_kind(path) == "onnx":
        raise ModelError(f"model.{key} {str(path)!r} is an ONNX file; use model.onnx: {str(path)!r} "
                         f"(served by ONNX Runtime) instead of model.{key}")


class OnnxHandle(ForwardOnlyHandle):
    """A classifier in an ONNX file, run by ONNX Runtime on the CPU.

    ``session`` takes normalised (N, C, H, W) float32 and returns (N, K) logits. A fixed batch
    dimension in the file (e.g. exported with batch 1) is served by splitting every batch
    into chunks of that size, padding the last one.
    """

    kind = "onnx"

    def __init__(self, session, *, mean, std, activation: str, input_size, num_classes: int,
                 fixed_batch: int | None = None, output_name: str | None = None, layout: str = "nchw"):
        super().__init__(activation=activation, input_size=input_size, num_classes=num_classes,
                         channels=len(mean))
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = output_name or session.get_outputs()[0].name
        self.layout = layout
        self.fixed_batch = fixed_batch
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        # The same float32 operations as PixelSpaceModel, so an exported network gives the
        # same numbers here as under torch.
        x = (x - self.mean) / self.std
        if self.layout == "nhwc":
            x = x.transpose(0, 2, 3, 1)
        x = np.ascontiguousarray(x, dtype=np.float32)
        b = self.fixed_batch
        if not b:
            return np.asarray(self._run(x), dtype=np.float32)
        out = []
        for i in range(0, x.shape[0], b):
            chunk = x[i: i + b]
            n = chunk.shape[0]
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            out.append(np.asarray(self._run(chunk), dtype=np.float32)[:n])
        return np.concatenate(out)


def _dim(d):
    """A fixed dimension as int; None for a symbolic or unknown one."""
    return d if isinstance(d, int) and d > 0 else None


def load_onnx(spec, num_classes: int) -> OnnxHandle:
    """The :class:`OnnxHandle` for ``spec.onnx``, checked on a probe batch: one float input
    (N, C, H, W) matching ``len(mean)`` and ``input_size``, one (N, num_classes) output."""
    path = Path(spec.onnx)
    where = f"model.onnx {str(path)!r}"
    if not path.is_file():
        raise ModelError(f"{where} does not exist")
    kind = file_kind(path)
    if kind != "onnx":
        what = {"zip": "a zip archive (TorchScript or torch.save): use model.torchscript, or model.factory "
                       "with model.weights",
                "pickle": "a pickled torch.save file: use model.factory with model.weights"}.get(kind, "unreadable as ONNX")
        raise ModelError(f"{where} is not an ONNX file; it is {what}")
    try:
        session = cpu_session(path)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types with long texts
        raise ModelError(f"{where}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from e
    inputs, outputs = session.get_inputs(), session.get_outputs()
    (h, w) = tuple(spec.input_size)
    c = max(len(spec.mean), len(spec.std))
    if c == 1:  # one value for every channel: the channels are the file's (else model.channels, else 3)
        dims = list(inputs[0].shape) if inputs and len(inputs[0].shape) == 4 else [None] * 4
        c = spec.channels or _dim(dims[1 if spec.layout == "nchw" else 3]) or 3
    mean = tuple(spec.mean) * c if len(spec.mean) == 1 else tuple(spec.mean)
    std = tuple(spec.std) * c if len(spec.std) == 1 else tuple(spec.std)
    if len(inputs) != 1:
        raise ModelError(f"{where} has {len(inputs)} inputs ({[i.name for i in inputs]}); expected one image batch (N, {c}, {h}, {w})")
    inp = inputs[0]
    if inp.type != "tensor(float)":
        raise ModelError(f"{where}: input {inp.name!r} is {inp.type}; expected tensor(float) (float32)")
    shape = list(inp.shape)
    expected = [None, c, h, w] if spec.layout == "nchw" else [None, h, w, c]
    if len(shape) != 4 or any(_dim(s) is not None and _dim(s) != e for s, e in zip(shape[1:], expected[1:])):
        other = [None, h, w, c] if spec.layout == "nchw" else [None, c, h, w]
        hint = (f"; it takes {'channels-last' if spec.layout == 'nchw' else 'channels-first'} input: set model.layout: "
                f"{'nhwc' if spec.layout == 'nchw' else 'nchw'}" if len(shape) == 4 and all(
                    _dim(s) is None or _dim(s) == e for s, e in zip(shape[1:], other[1:])) else "")
        raise ModelError(f"{where}: input {inp.name!r} has shape {shape}; expected (N, {', '.join(map(str, expected[1:]))}) "
                         f"from model.mean ({c} channels), model.input_size [{h}, {w}] and model.layout "
                         f"{spec.layout}{hint}")
    choice = choose_named([o.name for o in outputs], spec.output, where)
    handle = OnnxHandle(session, mean=mean, std=std, activation=spec.activation,
                        input_size=spec.input_size, num_classes=num_classes, fixed_batch=_dim(shape[0]),
                        output_name=choice.selector, layout=spec.layout)
    handle.output_choice = choice.describe()
    try:
        out = handle._forward(np.zeros((2, c, h, w), dtype=np.float32))
    except Exception as e:
        raise ModelError(f"{where} failed on a (2, {c}, {h}, {w}) input: {str(e).splitlines()[0]}") from e
    if out.ndim != 2 or out.shape != (2, num_classes):
        raise ModelError(f"{where} outputs shape {tuple(out.shape)} for 2 images (output {handle.output_name!r}); "
                         f"expected (2, {num_classes}) logits, one per class of the dataset")
    return handle
