"""The one training loop every trainable method uses.

A method describes what to train as a `TrainingTask` (its modules, their optimizers, how to draw a
batch and how to learn from it); `run_training` does the rest, the same way on one CPU, several
processes, GPUs or nodes (start `analogize` with `accelerate launch` or `torchrun` for those; see
docs/scale-out.md):

- seeding: torch, numpy and Python are seeded from `LoopSettings.seed` (offset by the process index,
  so each process draws its own dropout noise);
- data: batch b of step s is drawn from `np.random.default_rng([seed, s, process_index, b])`, a pure
  function of the step, so a resumed run sees exactly the batches an uninterrupted run would;
  each process draws its own batches and accelerate averages their gradients;
- gradient accumulation: each step sums the gradients of `gradient_accumulation_steps` batches
  (accelerate's `accumulate`: no gradient sync between processes until the last one) and updates once;
- checkpoints: `run_dir/checkpoints/step-000123/` holds accelerate's `save_state` (the weights
  that train, as safetensors — frozen ones are left out; optimizer, gradient-scaler and RNG state), one `ema-NAME.safetensors` per averaged
  module and `state.json` (step and fingerprint). Each is written into a hidden staging folder and
  renamed into place, so a crash never leaves half a checkpoint; only the newest few are kept;
- resume: continue from the newest checkpoint. A run resumed on the same machine with the same
  number of processes ends with exactly the weights of an uninterrupted run (on the main process,
  whose weights are the ones kept; other processes may differ in BatchNorm statistics). Resuming where no
  checkpoint exists starts from step 0 with a logged warning, so a command line with `--resume`
  can always be re-run as is. A checkpoint whose fingerprint (model shape, data, seed) differs
  from this run is refused with an `AnalogizeError`; the step count may differ;
- layout: a task may ask for its modules and its batches' images in channels-last memory;
- EMA: an exponential moving average of chosen modules (`torch.optim.swa_utils.AveragedModel`);
- log: one entry per step (each loss averaged over the step's batches, each optimizer's learning
  rate, samples/s over all processes, seconds) to `run_dir/losses.csv` or, with
  `log_with="tensorboard"`, to TensorBoard event files in `run_dir/tensorboard/`;
- processes: only the main process writes logs and checkpoint files (every process joins the save,
  which waits for all of them); at the end, buffers (BatchNorm statistics) are copied from the
  main process to the others, so every process ends with the same weights;
- progress: a tqdm bar (tqdm.auto: a widget in Jupyter), shown when asked for, on the main
  process only. Whether to ask is the caller's choice: the CLI asks when stderr is a terminal,
  the Python API by default, so a notebook or a logged run shows one too.

With `run_dir=None` (the benchmark, quick experiments) nothing is written to disk.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (DistributedDataParallelKwargs, DistributedType, broadcast, find_batch_size,
                               recursively_apply, send_to_device, set_seed)
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from .atomic import DISK_FULL_ERRORS, disk_full_as_error, write_text_atomic
from .constants import LOG_DESTINATIONS, MIXED_PRECISION_MODES
from .distributed import process_state
from .errors import AnalogizeError, DiskFullError

logger = logging.getLogger(__name__)

CHECKPOINTS_FOLDER = "checkpoints"
STATE_FILE = "state.json"
LOSS_LOG = "losses.csv"
CHECKPOINT_NAME = re.compile(r"step-(\d+)")
SHARDED_SETUPS = (DistributedType.DEEPSPEED, DistributedType.FSDP, DistributedType.MEGATRON_LM)
TENSORBOARD_FOLDER = "tensorboard"


@dataclass
class LoopSettings:
    """How long to train and what to keep along the way."""

    steps: int
    """Total optimisation steps. A resumed run continues up to this count."""
    seed: int = 0
    """Seeds model-independent randomness (torch, numpy, Python) and every batch."""
    checkpoint_every: int = 500
    """Write a checkpoint every this many steps, and always after the last; 0 = only after the last."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep; older ones are deleted."""
    ema_decay: float | None = None
    """Decay of the exponential moving average of `ema_modules` (e.g. 0.999); None = no average."""
    ema_modules: tuple[str, ...] = ()
    """Names (keys of `TrainingTask.modules`) of the modules to average."""
    mixed_precision: str = "no"
    """"no", "bf16" or "fp16" (fp16 needs a GPU); handled by accelerate's autocast and scaler."""
    gradient_accumulation_steps: int = 1
    """Batches per step whose gradients are summed into one update."""
    log_with: str = "csv"
    """"csv" (run_dir/losses.csv), "tensorboard" (run_dir/tensorboard/) or "none"."""
    progress: bool = True
    """Show a progress bar (only ever on the main process)."""

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise AnalogizeError(f"steps is {self.steps}; give a step count of 0 or more")
        if self.seed < 0:
            raise AnalogizeError(f"seed is {self.seed}; give a seed of 0 or more")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            raise AnalogizeError(
                f"checkpoint_every={self.checkpoint_every}, keep_checkpoints={self.keep_checkpoints}; "
                "give checkpoint_every >= 0 and keep_checkpoints >= 1"
            )
        if self.ema_modules and self.ema_decay is None:
            raise AnalogizeError(f"ema_modules {self.ema_modules} given without ema_decay; set ema_decay (e.g. 0.999)")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise AnalogizeError(f"ema_decay is {self.ema_decay}; give a value in [0, 1), e.g. 0.999")
        if self.mixed_precision not in MIXED_PRECISION_MODES:
            raise AnalogizeError(
                f"mixed_precision {self.mixed_precision!r} is unknown; choose one of {', '.join(MIXED_PRECISION_MODES)}"
            )
        if self.gradient_accumulation_steps < 1:
            raise AnalogizeError(
                f"gradient_accumulation_steps is {self.gradient_accumulation_steps}; give 1 (no accumulation) or more"
            )
        if self.log_with not in LOG_DESTINATIONS:
            raise AnalogizeError(f"log_with {self.log_with!r} is unknown; choose one of {', '.join(LOG_DESTINATIONS)}")
        if self.log_with == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
            raise AnalogizeError("log_with='tensorboard' needs the tensorboard package; "
                                 "pip install 'analogize[tensorboard]' or log to csv")


class TrainingTask(Protocol):
    """What a method hands to `run_training`.

    For the duration of `run_training` the entries of `modules` and `optimizers` are replaced by
    the accelerate-prepared versions (moved to the device, wrapped for distributed training and
    mixed precision), so `training_step` must reach them through these dicts. Afterwards
    `modules` holds the plain, trained modules again.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    fingerprint: dict[str, Any]
    """JSON-able settings a checkpoint must match to be resumed (model sizes, data, ...)."""

    def batch(self, rng: np.random.Generator) -> Any:
        """One batch (tensors, or tuples/dicts of them) drawn from `rng` alone."""

    # Optional: `find_unused_parameters = True` when a step's backward passes leave some trainable
    # weights without gradients (distributed training must then look for them); `channels_last =
    # True` to train the modules and the batch's images in channels-last memory, the layout
    # convolutions run fastest in (oneDNN's on a CPU, cuDNN's on tensor cores; measured per method
    # in BENCHMARKS.md, so a task opts in).

    def training_step(self, batch: Any, accelerator: Accelerator) -> dict[str, float]:
        """Learn from `batch` (already on the device): `accelerator.backward`, then step the
        optimizers. The loop zeroes the gradients after each step (not the task before each batch,
        which would discard the batches accumulated so far). Return each loss as a float for the
        log and the progress bar."""


@dataclass
class TrainingResult:
    steps: int
    """The step count the modules have reached (including steps before a resume)."""
    losses: list[dict[str, float]]
    """One entry per step run by this call: "step" and each loss."""
    ema: dict[str, nn.Module]
    """The averaged copy of each module named in `LoopSettings.ema_modules`."""


def run_training(
    task: TrainingTask,
    settings: LoopSettings,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
) -> TrainingResult:
    """Train `task` for `settings.steps` steps, checkpointing under `run_dir` if one is given."""
    if resume and run_dir is None:
        raise AnalogizeError("resume needs the run folder whose checkpoints to continue; give run_dir")
    missing = sorted(set(settings.ema_modules) - set(task.modules))
    if missing:
        raise AnalogizeError(f"ema_modules names {', '.join(missing)}, not one of {', '.join(task.modules)}")
    fingerprint = {
        **task.fingerprint,
        "seed": settings.seed,
        "ema_decay": settings.ema_decay,
        "ema_modules": list(settings.ema_modules),
    }
    checkpoints = run_dir / CHECKPOINTS_FOLDER if run_dir is not None else None
    resume_from = None
    if checkpoints is not None:
        if resume:
            resume_from = checkpoint_to_resume(checkpoints, fingerprint, settings.steps)
        elif newest_checkpoint(checkpoints) is not None:
            raise AnalogizeError(
                f"{run_dir}: holds checkpoints of an earlier run; continue it with --resume, or delete that folder to start over"
            )

    accelerator = make_accelerator(settings, run_dir, getattr(task, "find_unused_parameters", False))
    check_data_parallel(accelerator)
    accelerator.register_save_state_pre_hook(drop_frozen_weights)
    set_seed(settings.seed, device_specific=True)
    channels_last = move_to_task_layout(task)
    # Averaged copies are made before `prepare`, which may patch `forward` for mixed precision.
    ema = {
        name: AveragedModel(
            task.modules[name],
            device=accelerator.device,
            multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay),
            use_buffers=True,
        )
        for name in settings.ema_modules
    }
    plain_optimizers = dict(task.optimizers)
    prepare_for_training(accelerator, task)
    start = load_checkpoint(accelerator, resume_from, ema) if resume_from is not None else 0

    csv_log = None
    if run_dir is not None and settings.log_with == "csv" and accelerator.is_main_process:
        csv_log = LossLog(run_dir / LOSS_LOG, start)
    if run_dir is not None and settings.log_with == "tensorboard":
        accelerator.init_trackers(TENSORBOARD_FOLDER)
    show_progress = settings.progress and accelerator.is_main_process
    bar = tqdm(total=settings.steps, initial=start, desc="training", unit="step", disable=not show_progress)

    history: list[dict[str, float]] = []
    try:
        for step in range(start + 1, settings.steps + 1):
            started = time.perf_counter()
            batch_losses, samples = [], 0
            for index in range(settings.gradient_accumulation_steps):
                rng = np.random.default_rng([settings.seed, step, accelerator.process_index, index])
                batch = send_to_device(task.batch(rng), accelerator.device)
                if channels_last:
                    batch = images_channels_last(batch)
                # Optimizers step (and processes sync gradients) only in the last batch of a step.
                with accelerator.accumulate(*task.modules.values()):
                    batch_losses.append(task.training_step(batch, accelerator))
                samples += find_batch_size(batch)
            for optimizer in task.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            losses = {name: float(np.mean([entry[name] for entry in batch_losses])) for name in batch_losses[0]}
            for name, averaged in ema.items():
                averaged.update_parameters(accelerator.unwrap_model(task.modules[name]))
            history.append({"step": step, **losses})
            seconds = time.perf_counter() - started
            record = {
                **losses,
                **learning_rates(task.optimizers),
                "samples_per_second": round(samples * accelerator.num_processes / seconds, 3),
                "seconds": round(seconds, 4),
            }
            if csv_log is not None:
                csv_log.write({"step": step, **record})
            accelerator.log(record, step=step)  # to TensorBoard when chosen, else nothing
            if checkpoints is not None and (step == settings.steps or (
                settings.checkpoint_every and step % settings.checkpoint_every == 0
            )):
                save_checkpoint(accelerator, checkpoints, step, fingerprint, ema, settings.keep_checkpoints)
            bar.set_postfix({name: f"{value:.4g}" for name, value in losses.items()}, refresh=False)
            bar.update(1)
    finally:
        bar.close()
        if csv_log is not None:
            csv_log.close()
        # Not accelerator.end_training(): it also ends the process group, which later work in
        # this process (another training, a batch apply) still needs.
        for tracker in accelerator.trackers:
            tracker.finish()
        accelerator.wait_for_everyone()
        task.modules = {
            name: accelerator.unwrap_model(module, keep_fp32_wrapper=False) for name, module in task.modules.items()
        }
        task.optimizers = plain_optimizers
    share_main_process_buffers(accelerator, [*task.modules.values(), *ema.values()])
    return TrainingResult(
        steps=settings.steps,
        losses=history,
        ema={name: averaged.module for name, averaged in ema.items()},
    )


def move_to_task_layout(task: TrainingTask) -> bool:
    """Move the task's modules to channels-last memory if it asks for that (`channels_last`);
    returns whether it did, so that its batches follow (`images_channels_last`)."""
    channels_last = getattr(task, "channels_last", False)
    if channels_last:
        for module in task.modules.values():
            module.to(memory_format=torch.channels_last)
    return channels_last


def images_channels_last(batch: Any) -> Any:
    """Every 4-D tensor of a batch (the images, (N, C, H, W)) in channels-last memory, like the modules."""
    return recursively_apply(
        lambda tensor: tensor.contiguous(memory_format=torch.channels_last) if tensor.ndim == 4 else tensor, batch)


def make_accelerator(settings: LoopSettings, run_dir: Path | None, find_unused_parameters: bool = False) -> Accelerator:
    """accelerate keeps one process-wide state that refuses a second mixed-precision mode, but one
    process may train several methods in turn (the benchmark). A different mode resets that state;
    the distributed set-up (accelerate's PartialState) is kept."""
    if AcceleratorState._shared_state.get("_mixed_precision", settings.mixed_precision) != settings.mixed_precision:
        AcceleratorState._reset_state()
    state = process_state()
    if settings.mixed_precision == "bf16" and state.device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning("mixed_precision='bf16' on a CPU without AVX512-BF16 or AMX is emulated and slower "
                       "than fp32; set mixed_precision='no'")
    tensorboard = settings.log_with == "tensorboard" and run_dir is not None
    return Accelerator(
        cpu=state.device.type == "cpu",
        mixed_precision=settings.mixed_precision,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        log_with="tensorboard" if tensorboard else None,
        project_dir=str(run_dir) if tensorboard else None,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AVX512-BF16 or AMX), where bf16
    autocast roughly halves a training step; elsewhere it is emulated. torch only exposes this
    privately, so an unknown answer counts as no."""
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe is not None and probe() for probe in probes)


def check_data_parallel(accelerator: Accelerator) -> None:
    """Every process holds the whole of each network (data parallelism). The methods trained here
    fit on one device, and the loop relies on it: EMA copies and the frozen discriminator use the
    whole weights. Sharded set-ups (DeepSpeed, FSDP, Megatron) are refused rather than half-working."""
    if accelerator.distributed_type in SHARDED_SETUPS:
        raise AnalogizeError(
            f"the launch configures {accelerator.distributed_type.value}, which analogize's training does not "
            "support (every network fits on one device); launch with plain data parallelism "
            "(accelerate launch --multi_gpu, or torchrun) instead"
        )


def learning_rates(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """The current learning rate of each optimizer: "lr", or "lr_NAME" when there are several."""
    if len(optimizers) == 1:
        return {"lr": next(iter(optimizers.values())).param_groups[0]["lr"]}
    return {f"lr_{name}": optimizer.param_groups[0]["lr"] for name, optimizer in optimizers.items()}


def share_main_process_buffers(accelerator: Accelerator, modules: list[nn.Module]) -> None:
    """Distributed training keeps weights equal on every process, but buffers (BatchNorm's running
    statistics) only as of each forward pass, after which every process updates its own. Copying
    the main process's makes all processes end with the weights the main process saves."""
    if accelerator.num_processes == 1:
        return
    for module in modules:
        for buffer in module.buffers():
            buffer.copy_(broadcast(buffer.detach().clone(), from_process=0))


def prepare_for_training(accelerator: Accelerator, task: TrainingTask) -> None:
    """Swap the task's modules and optimizers for their accelerate-prepared versions."""
    module_names, optimizer_names = list(task.modules), list(task.optimizers)
    objects = [*task.modules.values(), *task.optimizers.values()]
    prepared = accelerator.prepare(*objects)
    if len(objects) == 1:
        prepared = (prepared,)
    task.modules = dict(zip(module_names, prepared[: len(module_names)]))
    task.optimizers = dict(zip(optimizer_names, prepared[len(module_names) :]))


def save_checkpoint(
    accelerator: Accelerator,
    checkpoints: Path,
    step: int,
    fingerprint: dict[str, Any],
    ema: dict[str, AveragedModel],
    keep: int,
) -> Path:
    """Write `checkpoints/step-NNNNNN` atomically and delete all but the newest `keep`. A full
    disk raises `DiskFullError` naming the checkpoint and leaves no staging folder behind.

    Every process calls this: accelerate writes each process's RNG state into the staging folder
    beside the weights the main process writes; only the main process renames and prunes."""
    final = checkpoints / f"step-{step:06d}"
    staging = checkpoints / f".{final.name}.tmp"
    if accelerator.is_main_process:
        for leftover in checkpoints.glob(".step-*.tmp"):  # left by a run killed mid-save
            shutil.rmtree(leftover, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        # safetensors and torch.save wrap the OSError of a full disk in errors of their own.
        with disk_full_as_error(final, written_by_library=True):
            accelerator.save_state(str(staging), safe_serialization=True)
            # save_state returns on each process once its own files are written; renaming the folder
            # before the others are done pulled it from under them on a loaded machine ("Parent
            # directory ... .tmp does not exist" on process 1).
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                for name, averaged in ema.items():
                    tensors = {key: value.detach().cpu().contiguous() for key, value in averaged.state_dict().items()}
                    save_file(tensors, staging / f"ema-{name}.safetensors")
                (staging / STATE_FILE).write_text(json.dumps({"step": step, "fingerprint": fingerprint}, indent=2))
                os.replace(staging, final)
    except DiskFullError:
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        for old in sorted(checkpoint_folders(checkpoints), key=checkpoint_step)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def checkpoint_to_resume(checkpoints: Path, fingerprint: dict[str, Any], steps: int) -> Path | None:
    """The newest checkpoint, checked against this run; None (with a warning) when there is none."""
    checkpoint = newest_checkpoint(checkpoints)
    if checkpoint is None:
        logger.warning("%s: no checkpoint to resume from; training from step 0", checkpoints)
        return None
    saved = json.loads((checkpoint / STATE_FILE).read_text())
    # Compare through JSON so tuples and lists read the same.
    current = json.loads(json.dumps(fingerprint))
    differences = [
        f"{key}={saved['fingerprint'].get(key)!r} there but {current.get(key)!r} now"
        for key in sorted(set(saved["fingerprint"]) | set(current))
        if saved["fingerprint"].get(key) != current.get(key)
    ]
    if differences:
        raise AnalogizeError(
            f"{checkpoint}: was made with other settings ({'; '.join(differences)}); "
            "resume with the same settings or start a new run folder"
        )
    if saved["step"] > steps:
        raise AnalogizeError(
            f"{checkpoint}: is already at step {saved['step']}, past the {steps} steps asked for; "
            f"ask for at least {saved['step']} steps or start a new run folder"
        )
    return checkpoint


def drop_frozen_weights(models: list[nn.Module], weights: list[dict[str, torch.Tensor]], _folder: str) -> None:
    """Checkpoints keep the weights that train, not frozen ones (a pretrained backbone under
    LoRAs: gigabytes that never change and that the task loads from where it got them)."""
    for model, state in zip(models, weights):
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                state.pop(name, None)


def load_checkpoint(accelerator: Accelerator, checkpoint: Path, ema: dict[str, AveragedModel]) -> int:
    """Load `checkpoint` into the prepared modules, optimizers, RNGs and averages; return its step.
    Not strict: a checkpoint holds only the weights that train (`drop_frozen_weights`)."""
    accelerator.load_state(str(checkpoint), strict=False)
    for name, averaged in ema.items():
        averaged.load_state_dict(load_file(checkpoint / f"ema-{name}.safetensors"))  # copied onto the device
    logger.info("resumed from %s", checkpoint)
    return json.loads((checkpoint / STATE_FILE).read_text())["step"]


def checkpoint_folders(checkpoints: Path) -> list[Path]:
    """Finished checkpoints (staging folders start with a dot and do not match)."""
    if not checkpoints.is_dir():
        return []
    return [path for path in checkpoints.iterdir() if path.is_dir() and CHECKPOINT_NAME.fullmatch(path.name)]


def checkpoint_step(path: Path) -> int:
    return int(CHECKPOINT_NAME.fullmatch(path.name).group(1))


def newest_checkpoint(checkpoints: Path) -> Path | None:
    return max(checkpoint_folders(checkpoints), key=checkpoint_step, default=None)


class LossLog:
    """`losses.csv`: one row per step. On resume, rows past the checkpoint's step (written by the
    interrupted run after its last checkpoint) are dropped, so each step appears once; the kept rows
    are rewritten atomically, so a run killed as it resumes still leaves them. A full disk raises
    `DiskFullError` naming the log."""

    def __init__(self, path: Path, start_step: int):
        self.path = path
        self.fields: list[str] | None = None
        kept: list[dict[str, str]] = []
        if start_step > 0 and path.is_file():
            with path.open(newline="") as existing:
                reader = csv.DictReader(existing)
                kept = [row for row in reader if int(row["step"]) <= start_step]
                self.fields = list(reader.fieldnames or []) or None
        write_text_atomic(path, self._rows(kept, header=True) if self.fields else "")
        self.file = path.open("a", newline="")

    def _rows(self, rows: list[dict[str, Any]], header: bool) -> str:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.fields)
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return text.getvalue()

    def write(self, row: dict[str, Any]) -> None:
        header = self.fields is None
        if header:
            self.fields = list(row)
        with disk_full_as_error(self.path):
            self.file.write(self._rows([row], header))
            self.file.flush()

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as error:  # flushing again a row a full disk kept out, which write() reported
            if error.errno not in DISK_FULL_ERRORS:
                raise
