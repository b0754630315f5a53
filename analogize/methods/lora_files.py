"""LoRA files for other tools, from any edit made of LoRAs (pairedit, loc): `analogize export`.

An edit lists its LoRAs with `Edit.loras()`: file stem -> tensors under diffusers/peft names
(`PATH.lora_A.weight`, `PATH.lora_B.weight`) with any alpha / rank scale already folded into
lora_B, so any loader that assumes scale 1 reproduces the LoRA exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import AnalogizeError
from .base import Edit


def export_loras(edit: Edit, folder: Path) -> list[Path]:
    """Write each of the edit's LoRAs twice into `folder`: `STEM.safetensors` in diffusers' format
    (`pipe.load_lora_weights(folder, weight_name=..., adapter_name=...)`) and
    `STEM_kohya.safetensors` in kohya's (A1111, ComfyUI)."""
    from diffusers import FluxPipeline, StableDiffusionPipeline
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    loras = edit.loras()
    if not loras:
        raise AnalogizeError(f"a {edit.method} edit has no LoRAs to export; export works on pairedit and loc edits")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, tensors in loras.items():
        tensors = {key: value.detach().float().cpu().contiguous() for key, value in tensors.items()}
        # FLUX's transformer blocks sit at the top of its module tree; SD's UNet has down/mid/up blocks.
        flux = any(key.startswith(("transformer_blocks.", "single_transformer_blocks.")) for key in tensors)
        weight_name = f"{stem}.safetensors"
        if flux:
            FluxPipeline.save_lora_weights(folder, transformer_lora_layers=tensors, weight_name=weight_name)
        else:
            StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=tensors, weight_name=weight_name)
        prefix = "transformer." if flux else "unet."
        kohya = convert_state_dict_to_kohya({prefix + key: value for key, value in tensors.items()})
        save_file({key: value.contiguous() for key, value in kohya.items()}, folder / f"{stem}_kohya.safetensors")
        written += [folder / weight_name, folder / f"{stem}_kohya.safetensors"]
    return written
