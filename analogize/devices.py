"""Which torch device a setting such as `--device` names: the one place a device is picked.

"auto" is accelerate's choice, so a multi-process launch gives every process its own GPU (as
distributed.py's `process_state` sets it up) and a single process the machine's accelerator
(CUDA, MPS, XPU), else the CPU. An explicit name must be one this machine can run: asking for a GPU
that is not there is an error that says what is there, never a quiet fall back to the CPU, which
would turn a GPU run into a CPU run without a word.
"""

from __future__ import annotations

import os

import torch

from .errors import AnalogizeError

KINDS = ("cpu", "cuda", "mps", "xpu")
"""The device types a name may give; "auto" picks among them."""


def resolve_device(name: str) -> torch.device:
    """"auto", "cpu", "cuda", "cuda:N", "mps" or "xpu" -> the torch device, checked to exist here."""
    if name == "auto":
        from .distributed import process_state

        return process_state().device
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise _unavailable(name, "is not a device name") from None
    if device.type not in KINDS:
        raise _unavailable(name, f"is a {device.type} device, which analogize does not run on")
    count = _device_count(device.type)
    if count == 0:
        raise _unavailable(name, f"needs {device.type.upper()}, which this machine does not have")
    if device.index is not None and device.index >= count:
        raise _unavailable(name, f"is past the {count} {device.type} device(s) here")
    return device


def use_device(name: str) -> torch.device:
    """Make `name` this process's device (a command's `--device`) and return it: accelerate's
    process state, which the training loop, batch apply and "auto" all ask, is set to it, so a
    command runs wholly there. A multi-process launch keeps "auto" only: each process has its GPU."""
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    from .distributed import launched_world_size, process_state

    device = resolve_device(name)
    if name == "auto" or process_state().device == device:
        return device
    if launched_world_size() > 1:
        raise AnalogizeError(f"--device {name}: a multi-process launch gives each process its own device; "
                             "use --device auto")
    AcceleratorState._reset_state(reset_partial_state=True)  # one process: no process group to lose
    previous = os.environ.get("ACCELERATE_TORCH_DEVICE")
    os.environ["ACCELERATE_TORCH_DEVICE"] = str(device)  # accelerate's own way to name the device
    try:
        PartialState(cpu=device.type == "cpu")
    finally:
        if previous is None:
            del os.environ["ACCELERATE_TORCH_DEVICE"]
        else:
            os.environ["ACCELERATE_TORCH_DEVICE"] = previous
    return device


def available_devices() -> list[str]:
    """The names this machine can run, the CPU first, then one per GPU (cuda:0, cuda:1, ...)."""
    return (["cpu"] + [f"cuda:{index}" for index in range(_device_count("cuda"))]
            + ["mps"] * _device_count("mps") + [f"xpu:{index}" for index in range(_device_count("xpu"))])


def _device_count(kind: str) -> int:
    """How many devices of `kind` this machine has (the CPU counts as one, MPS as at most one)."""
    if kind == "cpu":
        return 1
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        return int(torch.backends.mps.is_available())
    xpu = getattr(torch, "xpu", None)
    return xpu.device_count() if xpu is not None and xpu.is_available() else 0


def _unavailable(name: str, reason: str) -> AnalogizeError:
    return AnalogizeError(f"device {name!r} {reason}; this machine has {', '.join(available_devices())}: "
                          "give one of those, or auto")
