"""Which process this is, when `analogize` runs as several (`accelerate launch`, `torchrun`).

Training (training.py) and batch apply (cli.py) both ask `process_state()`. It is accelerate's
`PartialState` with one correction: accelerate only treats a multi-process launch on a machine
without a GPU as distributed when told `cpu=True`. Without that, `torchrun --nproc_per_node 2` on
a CPU machine would start two unrelated single-process runs that write the same files, so a launch
with a world size above one is always made distributed, over gloo on the CPU if nothing else.
"""

from __future__ import annotations

import os

import torch
from accelerate import PartialState
from accelerate.utils import DistributedType


def launched_world_size() -> int:
    """The number of processes the launcher started (1 when started directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_state() -> PartialState:
    state = PartialState()
    if state.distributed_type == DistributedType.NO and launched_world_size() > 1:
        PartialState._reset_state()
        state = PartialState(cpu=True)
    return state


def leave_process_group() -> None:
    """End this process's part in a multi-process launch. gloo aborts a process that exits while
    its group is still open, so every command ends with this."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
