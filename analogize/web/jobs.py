"""The web app's server-side state: training jobs and apply jobs, each in its own folder.

Nothing here knows about Gradio, so it is tested without a browser. The state lives on disk under
one work folder, so a page reload (or a new browser tab) finds every job as it was:

    WORKDIR/train/ID/pairs/{before,after}/   the uploaded pairs
    WORKDIR/train/ID/job.json                method, preset, steps, what the user last asked for
    WORKDIR/train/ID/edit.edit               the learned edit, once done
    WORKDIR/train/ID/edit.edit.run/          checkpoints and losses.csv (progress and the loss curve)
    WORKDIR/train/ID/log.txt                 the learn command's own output
    WORKDIR/apply/ID/                        inputs, the strength map, results and results.zip
    WORKDIR/edit/ID/                         a PIXELS edit: source, exemplar, map, result.png and its
                                             result.png.history.json (the format `analogize edit` writes)

A training is the `analogize learn` command run as a child process: cancelling stops it, resuming
runs it again with `--resume`, and a crash in it cannot take the server down. Only one runs at a
time. Applies run in the server process through `Edit.apply`, one request after another.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import write_text_atomic
from ..batch import apply_edit, output_path
from ..editfile import load_edit
from ..errors import AnalogizeError
from ..images import IMAGE_SUFFIXES, load_image, save_image
from ..methods import get_method
from ..methods.base import Edit, TrainableConfig
from ..pairs import PairSet, find_pair_folders

JOB_ID = re.compile(r"[0-9a-f]{12}")
EDIT_NAME = "edit.edit"
RESULTS_ZIP = "results.zip"
STRENGTH_MAP_NAME = "strength-map.png"
EDITS_KEPT_LOADED = 4
PRETRAINED_SCREEN_NEEDS = ("this screen builds on a pretrained model (docs/methods/pixels.md, "
                           "docs/methods/paint-by-example.md)")
CHECKPOINTS_PER_RUN = 20
"""A web training is checkpointed about this many times, so a cancelled one resumes near where it was."""


@dataclass
class Limits:
    """What one request may upload (file sizes are limited by the web server itself)."""

    max_pairs: int = 200
    max_photos: int = 50
    max_unzipped_bytes: int = 1 << 30


@dataclass
class TrainingStatus:
    """What the page shows about a training job."""

    job: str
    method: str
    preset: str | None
    state: str
    """"running", "done", "cancelled", "stopped" (server restarted mid-run) or "failed"."""
    step: int
    total_steps: int
    losses: list[dict[str, float]] = field(default_factory=list)
    message: str = ""
    edit_path: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class Jobs:
    """Every job of one server, under `workdir`."""

    def __init__(self, workdir: Path, limits: Limits | None = None, models_dir: Path | None = None):
        self.workdir = Path(workdir).resolve()
        self.limits = limits or Limits()
        self.models_dir = Path(models_dir).resolve() if models_dir is not None else None
        """Where the pretrained models the page may name live; None: the server loads none."""
        (self.workdir / "train").mkdir(parents=True, exist_ok=True)
        (self.workdir / "apply").mkdir(parents=True, exist_ok=True)
        (self.workdir / "edit").mkdir(parents=True, exist_ok=True)
        self._models: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen] = {}
        self._edits: OrderedDict[tuple[str, float], Edit] = OrderedDict()

    # --- training ---------------------------------------------------------------------------------

    def start_training(self, before: list[Path], after: list[Path], archive: Path | None, method: str,
                       preset: str | None, steps: int | None, pretrained: str | None = None) -> str:
        """Check the uploads and settings, then start learning; returns the job id. `pretrained`
        names the model under `models_dir` the method builds on (its `pretrained_setting`), for
        the methods that have one."""
        chosen = get_method(method)
        setting = chosen.pretrained_setting
        folder = self.model_folder(pretrained, f"{chosen.name} needs {chosen.needs}") if setting else None
        config = chosen.make_config(preset, steps=steps, **({setting: folder} if setting else {}))
        with self._lock:
            running = self._running_job()
            if running is not None:
                raise AnalogizeError(f"training job {running} is still running; wait for it or cancel it first")
            job = secrets.token_hex(6)
            folder = self.workdir / "train" / job
            try:
                self._write_pairs(folder / "pairs", before, after, archive)
                pairs = PairSet.from_folder(folder / "pairs")
            except AnalogizeError:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            settings = {"method": chosen.name, "preset": preset or chosen.default_preset,
                        "steps": getattr(config, "steps", 0), "pairs": len(pairs), "created": time.time(),
                        "trainable": isinstance(config, TrainableConfig), "wanted": "run",
                        "pretrained": {setting: getattr(config, setting)} if setting else {}}
            write_text_atomic(folder / "job.json", json.dumps(settings, indent=2))
            self._launch(job, resume=False)
            return job

    def cancel_training(self, job: str) -> None:
        with self._lock:
            self._update(job, wanted="cancel")
            process = self._processes.get(job)
            if process is not None and process.poll() is None:
                stop_gently(process)

    def resume_training(self, job: str) -> None:
        with self._lock:
            running = self._running_job()
            if running is not None:
                raise AnalogizeError(f"training job {running} is still running; wait for it or cancel it first")
            if self.training_status(job).state == "done":
                raise AnalogizeError(f"training job {job} has finished; there is nothing to resume")
            self._update(job, wanted="run")
            self._launch(job, resume=True)

    def latest_training(self) -> str | None:
        """The newest training job (what a freshly loaded page shows)."""
        jobs = [folder for folder in (self.workdir / "train").iterdir() if (folder / "job.json").is_file()]
        if not jobs:
            return None
        return max(jobs, key=lambda folder: json.loads((folder / "job.json").read_text())["created"]).name

    def finished_edits(self) -> list[tuple[str, str]]:
        """(label, job id) of every training that has produced an edit, newest first."""
        found = []
        for folder in (self.workdir / "train").iterdir():
            if (folder / EDIT_NAME).is_file() and (folder / "job.json").is_file():
                settings = json.loads((folder / "job.json").read_text())
                label = f"{settings['method']} from {settings['pairs']} pair(s) · {time.strftime('%H:%M:%S', time.localtime(settings['created']))} · {folder.name}"
                found.append((settings["created"], label, folder.name))
        return [(label, job) for _, label, job in sorted(found, reverse=True)]

    def training_status(self, job: str) -> TrainingStatus:
        folder = self._folder("train", job)
        settings = json.loads((folder / "job.json").read_text())
        losses = read_losses(folder / f"{EDIT_NAME}.run" / "losses.csv")
        step = int(losses[-1]["step"]) if losses else 0
        process = self._processes.get(job)
        edit = folder / EDIT_NAME
        message = ""
        if process is not None and process.poll() is None:
            state = "running"
        elif edit.is_file():
            state, step = "done", settings["steps"]
            message = last_line(folder / "log.txt")
        elif settings["wanted"] == "cancel":
            state = "cancelled"
        elif process is None:
            state = "stopped"
        else:
            state, message = "failed", last_line(folder / "log.txt")
        return TrainingStatus(job, settings["method"], settings["preset"], state, step, settings["steps"], losses,
                              message, str(edit) if edit.is_file() else None)

    def _launch(self, job: str, *, resume: bool) -> None:
        folder = self._folder("train", job)
        settings = json.loads((folder / "job.json").read_text())
        command = [sys.executable, "-m", "analogize", "learn", str(folder / "pairs"), "-o", str(folder / EDIT_NAME),
                   "--method", settings["method"], "--quiet"]
        if settings["preset"]:
            command += ["--preset", settings["preset"]]
        for setting, weights in settings["pretrained"].items():
            command += [f"--{setting.replace('_', '-')}", weights]
        if settings["trainable"]:
            command += ["--steps", str(settings["steps"]),
                        "--checkpoint-every", str(max(1, settings["steps"] // CHECKPOINTS_PER_RUN))]
        if resume:
            command.append("--resume")
        with (folder / "log.txt").open("a") as log:
            self._processes[job] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL)

    def _running_job(self) -> str | None:
        return next((job for job, process in self._processes.items() if process.poll() is None), None)

    def _update(self, job: str, **changes) -> None:
        path = self._folder("train", job) / "job.json"
        write_text_atomic(path, json.dumps({**json.loads(path.read_text()), **changes}, indent=2))

    def _write_pairs(self, folder: Path, before: list[Path], after: list[Path], archive: Path | None) -> None:
        if archive is not None:
            unpack_pairs(archive, folder, self.limits.max_unzipped_bytes)
            count = len(list(find_pair_folders(folder)[0].iterdir()))
        else:
            if not before or not after:
                raise AnalogizeError("no pairs uploaded; drop the before images and the after images "
                                     "(matched by file name), or one zip with before/ and after/ folders")
            for side, files in (("before", before), ("after", after)):
                (folder / side).mkdir(parents=True, exist_ok=True)
                for path in files:
                    shutil.copyfile(path, folder / side / Path(path).name)
            count = len(before)
        if count > self.limits.max_pairs:
            raise AnalogizeError(f"{count} pairs uploaded; the limit is {self.limits.max_pairs}: use fewer pairs, "
                                 "or the command line for large sets")

    # --- applying ---------------------------------------------------------------------------------

    def apply(self, edit_path: Path, photos: list[Path], strength: float, strength_map: np.ndarray | None,
              progress: Callable[[int, int], None] | None = None) -> tuple[list[Path], list[Path], list[str]]:
        """Edit each photo, going on past any that fails (batch.run_batch, as the CLI does); returns
        (inputs kept, results, one line per failed photo), all inside a new apply folder, whose
        results.zip holds the results and the strength map used. `progress(done, photos)` hears
        of each photo finished."""
        if not photos:
            raise AnalogizeError("no photos uploaded; drop one or more photos to edit")
        if len(photos) > self.limits.max_photos:
            raise AnalogizeError(f"{len(photos)} photos uploaded; the limit is {self.limits.max_photos} per "
                                 "request: send fewer at a time, or use `analogize apply` for folders")
        edit = self._load_edit(edit_path)
        folder = self.workdir / "apply" / secrets.token_hex(6)
        folder.mkdir(parents=True)
        if strength_map is not None:
            save_map(strength_map, folder / STRENGTH_MAP_NAME)
            strength_map = load_image(folder / STRENGTH_MAP_NAME)  # exactly what the CLI would read
        summary = apply_edit(edit, edit_path, [Path(photo) for photo in photos], folder / "results",
                             strength=strength, strength_map=strength_map, on_done=progress)
        failed = {Path(failure["image"]): failure["reason"] for failure in summary.failed}
        errors = [reason.replace(str(photo), photo.name) for photo, reason in failed.items()]
        inputs, results = [], []
        for photo in map(Path, photos):
            if photo in failed:
                continue
            kept = folder / "inputs" / photo.name
            kept.parent.mkdir(exist_ok=True)
            shutil.copyfile(photo, kept)
            inputs.append(kept)
            results.append(output_path(folder / "results", photo))
        if results:
            with zipfile.ZipFile(folder / RESULTS_ZIP, "w") as archive:
                for output in results:
                    archive.write(output, output.name)
                if strength_map is not None:
                    archive.write(folder / STRENGTH_MAP_NAME, STRENGTH_MAP_NAME)
        return inputs, results, errors

    def pixels(self, source: Path, exemplar: Path, paint: np.ndarray | None, base_model: str, *, steps: int,
               seed: int, history: list[dict] | None = None,
               progress: Callable[[int, int], None] | None = None) -> tuple[Path, list[dict]]:
        """PIXELS on the server (exemplars.pixels_step, as `analogize edit`): edit `source` towards
        `exemplar` where `paint` (H, W) in [0, 1] is set (everywhere when None), in a new edit
        folder that keeps both images, the map, the result and its history. Returns the result and
        `history` with this step appended; a result used as the next source continues it.
        `progress(done, steps)` hears of each denoising step."""
        from ..backbones import BackboneConfig, load_backbone
        from ..exemplars import ExemplarFile, pixels_step

        base_model = self.model_folder(base_model, PRETRAINED_SCREEN_NEEDS)
        folder = self.workdir / "edit" / secrets.token_hex(6)
        folder.mkdir(parents=True)
        kept_source, kept_exemplar = (folder / f"{name}{Path(path).suffix}"
                                      for name, path in (("source", source), ("exemplar", exemplar)))
        shutil.copyfile(source, kept_source)  # the uploads are Gradio's temporary files
        shutil.copyfile(exemplar, kept_exemplar)
        edit_map = None
        if paint is not None:  # painted = follow the exemplar, PIXELS' black
            edit_map = save_map(1.0 - paint, folder / "map.png")
        history = pixels_step(
            lambda: self._pretrained("pixels", base_model, lambda: load_backbone(BackboneConfig(base_model=base_model))),
            base_model, kept_source, [ExemplarFile(kept_exemplar, edit_map)], folder / "result.png",
            steps=steps, seed=seed, history=history or [], progress=progress,
        )
        return folder / "result.png", history

    def paint_by_example(self, source: Path, exemplar: Path, paint: np.ndarray | None, base_model: str, *,
                         steps: int, guidance: float, seed: int,
                         progress: Callable[[int, int], None] | None = None) -> Path:
        """Paint by Example on the server: repaint where `paint` (H, W) in [0, 1] is set, after
        `exemplar`; `progress(done, steps)` hears of each denoising step."""
        from ..devices import resolve_device
        from ..methods.paint_by_example import PaintByExampleModel, paint as paint_region

        if paint is None:
            raise AnalogizeError("nothing painted; paint the region to repaint on the photo")
        base_model = self.model_folder(base_model, PRETRAINED_SCREEN_NEEDS)
        device = resolve_device("auto")
        model = self._pretrained("paint-by-example", base_model,
                                 lambda: PaintByExampleModel.from_pretrained(base_model).to(device))
        folder = self.workdir / "edit" / secrets.token_hex(6)
        folder.mkdir(parents=True)
        save_map(paint, folder / "mask.png")
        result = paint_region(model, model.backbone(device), load_image(source),
                              paint, load_image(exemplar), steps=steps, guidance=guidance, seed=seed,
                              progress=progress)
        output = folder / "result.png"
        save_image(result, output)
        return output

    def _pretrained(self, kind: str, folder: str, load):
        """A pretrained model, loaded on first use; one in memory at a time (they take gigabytes)."""
        if (kind, folder) not in self._models:
            self._models.clear()
            self._models[kind, folder] = load()
        return self._models[kind, folder]

    def available_models(self) -> list[str]:
        """The names of the model folders under `models_dir`: what the page offers."""
        if self.models_dir is None or not self.models_dir.is_dir():
            return []
        return sorted(entry.name for entry in self.models_dir.iterdir() if entry.is_dir() and not entry.name.startswith("."))

    def model_folder(self, name: str | None, needs: str) -> str:
        """The folder of the model the page names. Only a folder directly under `models_dir`, by its
        name: a visitor must not make the server load whatever path they type, and the errors
        name no path on the server either."""
        if self.models_dir is None:
            raise AnalogizeError(f"{needs}; this server loads no pretrained models: start it with --models-dir DIR, "
                                 "DIR holding the downloaded model folders")
        available = self.available_models()
        if not name:
            raise AnalogizeError(f"{needs}; choose one of this server's models: {', '.join(available) or 'none yet'}")
        if name not in available:
            raise AnalogizeError(f"{name!r} is not one of this server's models ({', '.join(available) or 'none yet'}); "
                                 "pick one by name, or ask the server's admin to add its folder to --models-dir")
        return str(self.models_dir / name)

    def edit_of_training(self, job: str) -> Path:
        path = self._folder("train", job) / EDIT_NAME
        if not path.is_file():
            raise AnalogizeError(f"training job {job} has no edit yet; wait for it to finish")
        return path

    def _load_edit(self, path: Path) -> Edit:
        """Loaded edits are kept for the next request, the few most recent only, on the server's
        device (auto: its GPU when it has one), as `analogize apply` runs them."""
        from ..devices import resolve_device

        key = (str(path), path.stat().st_mtime)
        if key not in self._edits:
            self._edits[key] = load_edit(path).to(resolve_device("auto"))
            while len(self._edits) > EDITS_KEPT_LOADED:
                self._edits.popitem(last=False)
        self._edits.move_to_end(key)
        return self._edits[key]

    def _folder(self, kind: str, job: str) -> Path:
        """A job's folder; ids come from the page, so anything but our own id format is refused."""
        if not JOB_ID.fullmatch(job or ""):
            raise AnalogizeError(f"{job!r} is not a job id of this server; reload the page")
        folder = self.workdir / kind / job
        if not folder.is_dir():
            raise AnalogizeError(f"job {job} does not exist on this server; reload the page")
        return folder

    def close(self) -> None:
        """Stop a running training (the server is shutting down); its checkpoints stay."""
        for job, process in list(self._processes.items()):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)


def save_map(weights: np.ndarray, path: Path) -> Path:
    """A painted (H, W) map in [0, 1] as the grey image file the command line reads for it
    (--strength-map, --map, --mask), so a page's request can be redone there."""
    return save_image(np.repeat(weights[..., None], 3, axis=2), path)


def read_losses(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)}
                for row in csv.DictReader(file) if row.get("step")]


def last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return lines[-1] if lines else ""


def unpack_pairs(archive: Path, folder: Path, max_bytes: int) -> None:
    """Extract the images of a zip of a pairs folder, refusing unsafe paths and zip bombs."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [info for info in zipped.infolist()
                       if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES]
            if sum(info.file_size for info in members) > max_bytes:
                raise AnalogizeError(f"{archive.name}: unpacks to more than {max_bytes >> 20} MB; send a smaller zip")
            for info in members:
                relative = Path(info.filename)
                if relative.is_absolute() or ".." in relative.parts:
                    raise AnalogizeError(f"{archive.name}: holds an unsafe path {info.filename!r}; zip the pairs folder itself")
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, target.open("wb") as destination:
                    shutil.copyfileobj(source, destination)
    except zipfile.BadZipFile:
        raise AnalogizeError(f"{archive.name}: is not a zip file; zip a folder with before/ and after/ inside") from None
    # A zip of the pairs folder itself holds one top folder; look inside it.
    entries = [entry for entry in folder.iterdir()] if folder.is_dir() else []
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].name.lower() in ("before", "after"):
        for inner in entries[0].iterdir():
            os.replace(inner, folder / inner.name)
        entries[0].rmdir()


def stop_gently(process: subprocess.Popen, patience: float = 30.0) -> None:
    """Interrupt a `learn` child (the CLI stops cleanly; checkpoints stay), killing it only if it
    has not exited after `patience` seconds. SIGINT is repeated each second because one that
    arrives while the child is still starting can be lost (before exec it meets the parent's
    handler, which only sets a flag; during imports a library's bare `except:` can swallow the
    KeyboardInterrupt). A test that cancels a training the moment it starts saw this once."""
    deadline = time.monotonic() + patience
    while process.poll() is None and time.monotonic() < deadline:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.kill()
        process.wait()
