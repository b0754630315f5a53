"""The shared training loop, exercised with a toy linear regression."""

from __future__ import annotations

import csv
import logging
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from accelerate.utils import DistributedType
from torch import nn

from analogize.errors import AnalogizeError
from analogize.training import LoopSettings, check_data_parallel, run_training

TRUE_WEIGHT = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]])
TRUE_BIAS = torch.tensor([0.5, -1.0])


class LinearRegressionTask:
    """Fits y = W x + b. Input noise comes from torch's global RNG, so an exact resume needs the
    saved RNG state as well as the weights, the optimizer state and the step-keyed batches."""

    def __init__(self, inputs: int = 4):
        torch.manual_seed(0)
        model = nn.Linear(inputs, 2)
        self.modules = {"model": model}
        self.optimizers = {"model": torch.optim.Adam(model.parameters(), lr=0.05)}
        self.fingerprint = {"inputs": inputs}
        self.inputs = inputs

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(rng.standard_normal((16, self.inputs)).astype(np.float32))
        return x, x[:, :4] @ TRUE_WEIGHT[:, : self.inputs].T + TRUE_BIAS

    def training_step(self, batch, accelerator) -> dict[str, float]:
        x, y = batch
        model, optimizer = self.modules["model"], self.optimizers["model"]
        loss = F.mse_loss(model(x + 0.1 * torch.randn_like(x)), y)
        accelerator.backward(loss)
        optimizer.step()
        return {"mse": loss.item()}


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def settings(steps: int, **overrides) -> LoopSettings:
    return LoopSettings(steps=steps, seed=3, progress=False, **overrides)


def test_training_lowers_the_loss_and_returns_plain_modules():
    task = LinearRegressionTask()
    result = run_training(task, settings(60))
    assert result.steps == 60
    assert [row["step"] for row in result.losses] == list(range(1, 61))
    assert result.losses[-1]["mse"] < 0.1 * result.losses[0]["mse"]
    assert type(task.modules["model"]) is nn.Linear
    assert type(task.optimizers["model"]) is torch.optim.Adam


class ConvolutionTask:
    """One 3×3 convolution learning to copy its input; records the layout each batch arrives in."""

    channels_last = True

    def __init__(self):
        torch.manual_seed(0)
        model = nn.Conv2d(3, 3, 3, padding=1)
        self.modules = {"model": model}
        self.optimizers = {"model": torch.optim.Adam(model.parameters(), lr=0.01)}
        self.fingerprint = {}
        self.layouts: list[bool] = []

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        images = torch.from_numpy(rng.random((2, 3, 8, 8), dtype=np.float32))
        return {"images": images}

    def training_step(self, batch, accelerator) -> dict[str, float]:
        images = batch["images"]
        self.layouts.append(images.is_contiguous(memory_format=torch.channels_last))
        loss = F.l1_loss(self.modules["model"](images), images)
        accelerator.backward(loss)
        self.optimizers["model"].step()
        return {"l1": loss.item()}


def test_a_task_that_asks_for_channels_last_trains_in_it():
    task = ConvolutionTask()
    run_training(task, settings(3))
    assert task.layouts == [True, True, True]
    assert task.modules["model"].weight.is_contiguous(memory_format=torch.channels_last)


def test_checkpoints_are_written_atomically_and_pruned(tmp_path):
    run_training(LinearRegressionTask(), settings(10, checkpoint_every=3, keep_checkpoints=2), run_dir=tmp_path)
    checkpoints = tmp_path / "checkpoints"
    # Steps 3, 6 and 9 were saved, plus the final step 10; only the newest two remain, and no
    # staging folder is left behind.
    assert sorted(path.name for path in checkpoints.iterdir()) == ["step-000009", "step-000010"]
    files = {path.name for path in (checkpoints / "step-000010").iterdir()}
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "state.json"} <= files


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    ema = {"ema_decay": 0.8, "ema_modules": ("model",)}
    uninterrupted = LinearRegressionTask()
    whole = run_training(uninterrupted, settings(12, **ema))

    interrupted = tmp_path / "run"
    run_training(LinearRegressionTask(), settings(5, checkpoint_every=2, **ema), run_dir=interrupted)
    resumed = LinearRegressionTask()
    rest = run_training(resumed, settings(12, checkpoint_every=2, **ema), run_dir=interrupted, resume=True)

    assert rest.steps == 12
    assert [row["step"] for row in rest.losses] == list(range(6, 13))
    assert [row["mse"] for row in rest.losses] == [row["mse"] for row in whole.losses[5:]]
    assert_same_weights(weights(resumed.modules["model"]), weights(uninterrupted.modules["model"]))
    assert_same_weights(weights(rest.ema["model"]), weights(whole.ema["model"]))


def test_resume_without_a_checkpoint_starts_from_step_zero_and_says_so(tmp_path, caplog):
    fresh = LinearRegressionTask()
    run_training(fresh, settings(4))
    resumed = LinearRegressionTask()
    with caplog.at_level(logging.WARNING, logger="analogize.training"):
        result = run_training(resumed, settings(4), run_dir=tmp_path, resume=True)
    assert "no checkpoint to resume from" in caplog.text
    assert [row["step"] for row in result.losses] == [1, 2, 3, 4]
    assert_same_weights(weights(resumed.modules["model"]), weights(fresh.modules["model"]))


def test_resume_with_a_different_model_size_is_refused(tmp_path):
    run_training(LinearRegressionTask(inputs=4), settings(3), run_dir=tmp_path)
    with pytest.raises(AnalogizeError, match=r"step-000003.*inputs=4 there but 3 now") as error:
        run_training(LinearRegressionTask(inputs=3), settings(6), run_dir=tmp_path, resume=True)
    assert "\n" not in str(error.value)


def test_resume_past_the_requested_steps_is_refused(tmp_path):
    run_training(LinearRegressionTask(), settings(5), run_dir=tmp_path)
    with pytest.raises(AnalogizeError, match="already at step 5"):
        run_training(LinearRegressionTask(), settings(3), run_dir=tmp_path, resume=True)


def test_a_fresh_run_refuses_a_folder_with_earlier_checkpoints(tmp_path):
    run_training(LinearRegressionTask(), settings(2), run_dir=tmp_path)
    with pytest.raises(AnalogizeError, match="--resume"):
        run_training(LinearRegressionTask(), settings(2), run_dir=tmp_path)


def test_ema_differs_from_the_raw_weights_and_tracks_them():
    task = LinearRegressionTask()
    initial = weights(task.modules["model"])
    result = run_training(task, settings(80, ema_decay=0.9, ema_modules=("model",)))
    raw, averaged = weights(task.modules["model"]), weights(result.ema["model"])
    distance = lambda a, b: sum(float((a[k] - b[k]).abs().sum()) for k in ("weight", "bias"))  # noqa: E731
    assert distance(averaged, raw) > 0
    assert distance(averaged, raw) < 0.1 * distance(initial, raw)


def test_losses_are_logged_to_csv(tmp_path):
    result = run_training(LinearRegressionTask(), settings(6), run_dir=tmp_path)
    with (tmp_path / "losses.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["step", "mse", "lr", "samples_per_second", "seconds"]
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [float(row["mse"]) for row in rows] == pytest.approx([row["mse"] for row in result.losses])
    assert all(float(row["lr"]) == 0.05 for row in rows)
    assert all(float(row["samples_per_second"]) > 0 and float(row["seconds"]) >= 0 for row in rows)


def test_losses_can_go_to_tensorboard_or_nowhere(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_training(LinearRegressionTask(), settings(4, log_with="tensorboard"), run_dir=tmp_path / "tb")
    assert not (tmp_path / "tb" / "losses.csv").exists()
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard")).Reload()
    assert {"mse", "lr", "samples_per_second"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("mse")] == [1, 2, 3, 4]

    run_training(LinearRegressionTask(), settings(2, log_with="none"), run_dir=tmp_path / "none")
    assert sorted(path.name for path in (tmp_path / "none").iterdir()) == ["checkpoints"]


class NoiselessSGDTask(LinearRegressionTask):
    """Plain SGD and no input noise, so an update can be computed by hand."""

    def __init__(self):
        super().__init__()
        self.optimizers = {"model": torch.optim.SGD(self.modules["model"].parameters(), lr=0.1)}
        self.steps_taken = 0

    def training_step(self, batch, accelerator) -> dict[str, float]:
        x, y = batch
        model, optimizer = self.modules["model"], self.optimizers["model"]
        loss = F.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        self.steps_taken += 1
        return {"mse": loss.item()}


def test_gradient_accumulation_makes_one_update_from_the_mean_gradient_of_several_batches():
    task = NoiselessSGDTask()
    model = task.modules["model"]
    expected = weights(model)
    # By hand: the two batches of step 1 (keys [seed, step, process, batch]), one SGD update with
    # the mean of their gradients.
    gradients = []
    for index in range(2):
        x, y = task.batch(np.random.default_rng([3, 1, 0, index]))
        model.zero_grad()
        F.mse_loss(model(x), y).backward()
        gradients.append({name: parameter.grad.clone() for name, parameter in model.named_parameters()})
    model.zero_grad(set_to_none=True)
    for name in expected:
        expected[name] -= 0.1 * (gradients[0][name] + gradients[1][name]) / 2

    result = run_training(task, settings(1, gradient_accumulation_steps=2))
    assert task.steps_taken == 2
    assert [row["step"] for row in result.losses] == [1]
    for name, tensor in weights(task.modules["model"]).items():
        torch.testing.assert_close(tensor, expected[name])


def test_resume_drops_log_rows_written_after_the_last_checkpoint(tmp_path):
    run_training(LinearRegressionTask(), settings(5, checkpoint_every=3), run_dir=tmp_path)
    # As if the run had crashed after logging step 5 but before saving it: step 3 is the newest.
    shutil.rmtree(tmp_path / "checkpoints" / "step-000005")
    run_training(LinearRegressionTask(), settings(6, checkpoint_every=3), run_dir=tmp_path, resume=True)
    with (tmp_path / "losses.csv").open(newline="") as file:
        assert [int(row["step"]) for row in csv.DictReader(file)] == [1, 2, 3, 4, 5, 6]


def test_without_a_run_dir_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_training(LinearRegressionTask(), settings(3, checkpoint_every=1))
    assert list(tmp_path.iterdir()) == []


def test_one_process_can_train_with_different_mixed_precision_in_turn():
    # The benchmark trains several methods in one process; accelerate's process-wide state
    # would otherwise refuse the second mode.
    full = run_training(LinearRegressionTask(), settings(5))
    bf16 = run_training(LinearRegressionTask(), settings(5, mixed_precision="bf16"))
    full_again = run_training(LinearRegressionTask(), settings(5))
    assert bf16.losses[-1]["mse"] != full.losses[-1]["mse"]
    assert full_again.losses == full.losses


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_support_warns_that_it_is_slower(monkeypatch, caplog, native):
    monkeypatch.setattr("analogize.training.cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="analogize.training"):
        run_training(LinearRegressionTask(), settings(1, mixed_precision="bf16"))
    assert ("emulated and slower" in caplog.text) is not native


def test_settings_are_checked():
    with pytest.raises(AnalogizeError, match="ema_decay"):
        LoopSettings(steps=5, ema_decay=1.5)
    with pytest.raises(AnalogizeError, match="mixed_precision"):
        LoopSettings(steps=5, mixed_precision="fp8")
    with pytest.raises(AnalogizeError, match="gradient_accumulation_steps"):
        LoopSettings(steps=5, gradient_accumulation_steps=0)
    with pytest.raises(AnalogizeError, match="log_with 'wandb' is unknown"):
        LoopSettings(steps=5, log_with="wandb")
    with pytest.raises(AnalogizeError, match="run_dir"):
        run_training(LinearRegressionTask(), settings(2), resume=True)


@pytest.mark.parametrize("setup", [DistributedType.DEEPSPEED, DistributedType.FSDP])
def test_sharded_launch_configs_are_refused_with_the_alternative(setup):
    with pytest.raises(AnalogizeError, match="--multi_gpu") as error:
        check_data_parallel(SimpleNamespace(distributed_type=setup))
    assert setup.value in str(error.value)
