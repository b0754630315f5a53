"""LoRA files for other tools, from any edit made of LoRAs (pairedit, loc): `analogize export`.

An edit lists its LoRAs with `Edit.loras()`: file stem -> tensors under diffusers/peft names
(`PATH.lora_A.weight`, `PATH.lora_B.weight`) with any alpha / rank scale already folded into
lora_B, so any loader that assumes scale 1 reproduces the LoRA exactly.

Each LoRA is written twice (docs/methods/pairedit.md, "Files", says which loader reads which):
- `STEM.safetensors`, diffusers' own format (`transformer.PATH.lora_A.weight` for FLUX,
  `unet.PATH.lora_A.weight` for a Stable Diffusion UNet), for `pipe.load_lora_weights`;
- `STEM_kohya.safetensors`, `lora_down` / `lora_up` / `alpha` under the flattened diffusers
  path: `lora_unet_PATH` for a UNet (SD 1.x/2.x, SDXL, InstructPix2Pix), `lora_transformer_PATH`
  for FLUX (OneTrainer's naming). These are the prefixes that diffusers' kohya converters
  (`_convert_non_diffusers_lora_to_diffusers`, `_convert_kohya_flux_lora_to_diffusers`) and
  ComfyUI's key map (`comfy/lora.py`, `model_lora_keys_unet`) read. kohya's own FLUX naming
  (`lora_unet_double_blocks_…`) addresses BFL's original modules, where q, k and v are one fused
  layer, so it would need analogize's three LoRAs combined into one; it is not written.
  `alpha` equals the rank, so every loader's scale alpha / rank is 1.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import write_bytes_atomic
from ..errors import AnalogizeError
from .base import Edit

DOWN, UP = ".lora_A.weight", ".lora_B.weight"


def export_loras(edit: Edit, folder: Path) -> list[Path]:
    """Write each of the edit's LoRAs into `folder` as `STEM.safetensors` (diffusers:
    `pipe.load_lora_weights(folder, weight_name=..., adapter_name=...)`) and
    `STEM_kohya.safetensors` (kohya-style keys); returns the paths written."""
    from diffusers import FluxPipeline, StableDiffusionPipeline
    from safetensors.torch import save

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
        kohya_path = folder / f"{stem}_kohya.safetensors"
        write_bytes_atomic(kohya_path, save(kohya_style(tensors, "lora_transformer_" if flux else "lora_unet_")))
        written += [folder / weight_name, kohya_path]
    return written


def kohya_style(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """`PATH.lora_A.weight` / `PATH.lora_B.weight` -> `PREFIX + PATH with "_" for "."` +
    `.lora_down.weight` / `.lora_up.weight` / `.alpha` (= rank: the scale is already in lora_B)."""
    converted = {}
    for key, down in tensors.items():
        if not key.endswith(DOWN):
            continue
        path = key[: -len(DOWN)]
        name = prefix + path.replace(".", "_")
        converted[f"{name}.lora_down.weight"] = down
        converted[f"{name}.lora_up.weight"] = tensors[path + UP]
        converted[f"{name}.alpha"] = torch.tensor(float(down.shape[0]))
    return converted
