"""resolve_device: the one place a device name becomes a torch device (on this CPU machine)."""

from __future__ import annotations

import pytest
import torch

from analogize.devices import resolve_device
from analogize.errors import AnalogizeError


def test_cpu_and_auto_resolve_to_the_cpu_here():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # accelerate's choice on a machine without a GPU


@pytest.mark.parametrize(("name", "reason"), [
    ("cuda", "needs CUDA, which this machine does not have"),
    ("cuda:3", "needs CUDA, which this machine does not have"),
    ("mps", "needs MPS, which this machine does not have"),
    ("tpu", "is not a device name"),
    ("meta", "is a meta device, which analogize does not run on"),
])
def test_a_device_this_machine_cannot_run_is_a_one_line_error_never_the_cpu(monkeypatch, name, reason):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(AnalogizeError) as error:
        resolve_device(name)
    message = str(error.value)
    assert "\n" not in message and reason in message
    assert message.endswith("this machine has cpu: give one of those, or auto")


def test_a_gpu_index_past_the_count_names_the_gpus_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(AnalogizeError, match=r"^device 'cuda:3' is past the 2 cuda device\(s\) here; this machine "
                                             r"has cpu, cuda:0, cuda:1: give one of those, or auto$"):
        resolve_device("cuda:3")
