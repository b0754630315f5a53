"""Pretrained model folders: where one is, and whether it can be loaded without running its code.

Every pretrained model folder analogize loads (the backbones' pipelines and Kandinsky prior,
Paint by Example's parts, the CLIP vision model `train-pbe` starts from) goes through here first:

    folder = model_folder(name, "--base-model")   # a folder, or a hub id in the local cache
    check_loadable(folder, "--base-model")        # no pickled weights, no custom code
    Pipeline.from_pretrained(folder, **NO_REMOTE_CODE)

A model folder is data from whoever published it, and two things in one can run code on load:
pickled weights (`.bin`, `.pt`, `.ckpt`, ...: unpickling calls whatever the pickle names) and
custom classes (a `.py` file in the folder, or a `model_index.json` naming a pipeline or a
component outside diffusers and transformers, which diffusers would look for as code).
`check_loadable` refuses both, in one line that names the file and the fix; the loads then pass
`use_safetensors=True` and `trust_remote_code=False`, so the libraries refuse them too, should a
folder change in between. The network is never touched: a hub id must already be in the local
Hugging Face cache.

A low layer: besides the standard library and errors.py it imports huggingface_hub (to find a
cached hub id) and diffusers (to tell its own classes from others), both only when needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

from .errors import AnalogizeError

SAFE_LOADING = {"use_safetensors": True, "local_files_only": True}
"""Keyword arguments of every diffusers model's `from_pretrained`: weights from safetensors only
(never unpickled), files from this machine only."""
NO_REMOTE_CODE = {**SAFE_LOADING, "trust_remote_code": False}
"""SAFE_LOADING for the loaders that could run a repository's code (diffusers' pipelines,
transformers' models): they may not."""
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Weight files written with pickle (torch.save and its ancestors)."""
OWN_LIBRARIES = ("diffusers", "transformers")
"""The libraries whose classes a model_index.json may name."""
OWN_COMPONENTS = {("paint_by_example", "PaintByExampleImageEncoder")}
"""Components named by another library that still load without code from the folder: Paint by
Example's image encoder, as its official layout (and `PaintByExampleModel.save_pretrained`)
names it. `PaintByExampleModel.from_pretrained` reads that sub-folder as a transformers CLIP
model; diffusers, asked to, finds no such module and imports nothing."""


def model_folder(name: str | Path, option: str) -> Path:
    """The folder `name` is, or the snapshot of hub id `name` in the local Hugging Face cache.
    `option` is the command-line option that gave it, for the message that says how to get it."""
    folder = Path(name)
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name), local_files_only=True))
    except Exception:  # noqa: BLE001 - every failure here means the same thing: not on this machine
        raise AnalogizeError(f"{name}: no such folder, nor a hub id in the local Hugging Face cache; download it "
                             f"where there is internet (`hf download {name} --local-dir DIR`), copy DIR here and "
                             f"pass {option} DIR") from None


PARTS_USED = ("unet", "transformer", "vae", "movq", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
              "scheduler", "prior", "image_encoder")
"""The pipeline parts analogize runs. Missing from the folder, some load as nothing (a tokenizer
did) and the run fails steps later with a library traceback; the others are optional
(safety_checker, feature_extractor)."""


def check_loadable(folder: Path, option: str) -> None:
    """Refuse a model folder whose load could run code: a `.py` file anywhere in it, a
    model_index.json naming a class outside diffusers and transformers, or a directory whose
    weights are pickled only. Raises AnalogizeError naming the file and the fix."""
    _check_model_index(folder, option)
    walked = list(_walk(folder))
    for directory, names in walked:
        for name in names:
            if name.endswith(".py"):
                raise _custom_code(folder, str((directory / name).relative_to(folder)), option)
    for directory, names in walked:
        pickled = [name for name in names if name.endswith(PICKLED_WEIGHTS)]
        if pickled and not any(name.endswith(".safetensors") for name in names):
            raise AnalogizeError(
                f"{directory / pickled[0]}: pickled weights and no .safetensors beside them; unpickling can run "
                "code, so analogize loads safetensors only. Convert them on a trusted machine (load the model "
                "once and save_pretrained(DIR, safe_serialization=True), or diffusers' / safetensors' convert "
                f"script), then pass {option} DIR")


def library_message(error: BaseException, limit: int = 200) -> str:
    """The first line of a library's error, trimmed, after its type: why a load failed, in a
    form that fits inside a one-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _walk(folder: Path):
    """(directory, sorted file names) for `folder` and every directory under it, through
    symbolic links as the loaders follow them (hub snapshots and hand-assembled folders use
    them), each real directory once."""
    seen: set[str] = set()
    for directory, subdirectories, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a link back up the tree: already walked
            subdirectories.clear()
            continue
        seen.add(real)
        subdirectories.sort()
        yield Path(directory), sorted(names)


def _check_model_index(folder: Path, option: str) -> None:
    """A pipeline's model_index.json may name only diffusers' own pipeline class and components
    from diffusers or transformers (or OWN_COMPONENTS): whatever else it names, diffusers would
    look for as code."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        return
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as error:
        raise AnalogizeError(f"{index_file}: not readable as JSON ({library_message(error)}); download the folder "
                             "again") from None
    if not isinstance(index, dict):
        raise AnalogizeError(f"{index_file}: not a diffusers model index (a JSON object); download the folder again")
    if "custom_pipeline" in index:
        raise _custom_code(folder, f"custom_pipeline {index['custom_pipeline']}", option)
    class_name = index.get("_class_name")
    if isinstance(class_name, list):  # [file, class]: a pipeline class in FILE.py
        raise _custom_code(folder, "/".join(str(part) for part in class_name), option)
    if isinstance(class_name, str) and not _diffusers_has_pipeline(class_name):
        raise AnalogizeError(f"{index_file}: names a pipeline class diffusers does not have ({class_name}); "
                             "analogize loads only diffusers' and transformers' own classes: give "
                             f"{option} a standard diffusers pipeline, or update diffusers if it is a new one")
    for component, value in index.items():
        if component.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue  # settings such as requires_safety_checker, not components
        library, class_ = value
        if library is None:
            continue
        if component in PARTS_USED and not (folder / component).is_dir():  # diffusers may build it empty
            raise AnalogizeError(f"{index_file}: names a {component} ({class_}) but {folder} has no {component}/ "
                                 "folder; download the folder again, whole")
        if library in OWN_LIBRARIES:
            continue
        if isinstance(library, str) and ((library, str(class_)) in OWN_COMPONENTS
                                         or _is_diffusers_pipeline_module(library)):
            continue
        raise _custom_code(folder, f"{component}: {library}/{class_}", option)


def _diffusers_has_pipeline(name: str) -> bool:
    import diffusers

    found = getattr(diffusers, name, None)  # diffusers imports only its own modules here
    return isinstance(found, type) and issubclass(found, diffusers.DiffusionPipeline)


def _is_diffusers_pipeline_module(name: str) -> bool:
    """Whether `name` is one of diffusers' own pipeline packages: Stable Diffusion 1.x and
    InstructPix2Pix folders name their safety checker ["stable_diffusion", ...]."""
    from diffusers import pipelines

    module = getattr(pipelines, name, None)  # diffusers imports only its own sub-packages here
    return isinstance(module, ModuleType) and module.__name__.startswith("diffusers.pipelines.")


def _custom_code(folder: Path, what: str, option: str) -> AnalogizeError:
    return AnalogizeError(f"{folder}: names custom code ({what}); analogize loads only diffusers' and transformers' "
                          f"own classes, never code from a model folder: give {option} a standard diffusers or "
                          "transformers folder of the model")
