"""Where tensors live: the run's device (``model.device``), its precision, and the two
crossings between the device and the host.

The device rule every explainer, metric and analysis follows (issue 15; the explainer base
class repeats it for method authors):

* **Inputs move to the device once per batch.** The engine moves a part's pixels once;
  the inputs of every model pass are then built on the device (perturbed copies, masks,
  curve steps). What is drawn at random — SmoothGrad noise, RISE masks, LIME/KernelSHAP
  coalitions, sensitivity radii, tie-break orders — is drawn, as before, from seeded CPU
  ``torch.Generator`` s and moved with :func:`to_device`: a GPU run uses the very
  perturbations of the CPU run.
* **Results come back once per call.** Model outputs are gathered and reduced on the device
  while the passes run, and cross to the host with :func:`to_host` after the last pass of a
  call (an ``explain`` chunk, a metric's ``evaluate``), never inside a loop of passes: no
  ``.item()``, ``.cpu()``, ``.tolist()``, ``.numpy()``, ``float()``/``int()``/``bool()`` of
  a device tensor between two passes. Each of those waits for the device to finish its
  queue, so a loop doing it runs at the speed of the round trip, not of the device.
* **Host algorithms work on host copies made once.** Superpixels, Felzenszwalb regions, the
  anchor search's bandit, XRAI's greedy ranking and ROAD's sparse solves are CPU code: they
  read a host copy of the images taken once per call (:func:`to_host`), and adaptive searches
  (anchors, counterfactuals) bring back one tensor per round of passes, not per pass.

On the CPU every crossing is a no-op (``Tensor.to`` returns the tensor itself), so
``device: cpu`` computes exactly what the code computed before devices existed
(``tests/test_golden_cpu.py`` checks it bit for bit).
"""

from __future__ import annotations

import platform
from contextlib import nullcontext

import torch

from .errors import ModelError
# The names are checked with the torch-free configuration (models/spec.py).
from .models.spec import DEVICE_CHOICES, check_device_name, check_precision_name  # noqa: F401

CPU = torch.device("cpu")

#: model.precision → the autocast dtype of forward-only passes (None: plain float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_count() -> int:
    """CUDA devices torch sees (0 on a CPU build or without a driver)."""
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except (AssertionError, RuntimeError):  # a CPU build, a broken driver
        return 0


def resolve_device(requested: str = "auto") -> tuple[torch.device, dict]:
    """(the device, what the manifest records about it) for ``model.device``.

    ``auto`` is the first CUDA device when torch sees one, else the CPU; ``cuda`` is the
    current CUDA device. A device torch does not see is refused with one line (ModelError)
    before anything is computed or written.
    """
    problem = check_device_name(requested)
    if problem:
        raise ModelError(problem)
    n = cuda_count()
    if requested == "auto":
        device = torch.device("cuda", torch.cuda.current_device()) if n else CPU
        reason = (f"auto: torch sees {n} CUDA device{'s' if n > 1 else ''}" if n
                  else f"auto: torch {torch.__version__} sees no CUDA device")
    elif requested == "cpu":
        device, reason = CPU, "requested"
    else:
        if not n:
            raise ModelError(f"model.device is {requested!r} but torch {torch.__version__} sees no CUDA device "
                             f"({'a CPU-only build' if torch.version.cuda is None else 'no driver or no GPU'}); "
                             "use device: cpu, or auto to take a GPU only where there is one")
        index = torch.cuda.current_device() if requested == "cuda" else int(requested.split(":")[1])
        if index >= n:
            raise ModelError(f"model.device is {requested!r} but torch sees {n} CUDA device{'s' if n > 1 else ''} "
                             f"(cuda:0{f' … cuda:{n - 1}' if n > 1 else ''}; CUDA_VISIBLE_DEVICES renumbers them); "
                             "expected one of those")
        device, reason = torch.device("cuda", index), "requested"
    return device, {"requested": requested, "resolved": str(device), "name": device_name(device), "reason": reason,
                    **({"memory_gib": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)}
                       if device.type == "cuda" else {})}


def device_name(device: torch.device) -> str:
    """"NVIDIA H200" for a GPU; the processor's model name for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run under autocast (fp16 on the CPU)."""
    problem = check_precision_name(precision)
    if problem:
        raise ModelError(problem)
    if precision == "fp16" and device.type != "cuda":
        raise ModelError(f"model.precision is 'fp16' but the model runs on {device}: float16 autocast needs a CUDA "
                         "device; use precision: bf16 (CPU autocast) or fp32")


def autocast(precision: str, device: torch.device):
    """The autocast context of forward-only passes at ``precision`` (no-op for fp32)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def model_device(model) -> torch.device:
    """The device ``model`` (a handle) runs on; the CPU for handles without one."""
    return getattr(model, "device", None) or CPU


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module with none)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return CPU


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``: itself when already there. A host tensor is copied without
    waiting for the device's queue (from pageable memory the copy is staged at once, so the
    source may be freed or reused right after)."""
    if t.device == device:
        return t
    return t.to(device, non_blocking=t.device.type == "cpu" and device.type == "cuda")


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the CPU: the one sanctioned device → host crossing (it waits for the device)."""
    return t.cpu()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for timing); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
