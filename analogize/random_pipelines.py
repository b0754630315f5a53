"""Diffusers pipelines built from configs, with random weights: nothing is downloaded.

loc's `cpu` preset trains such a small InstructPix2Pix pipeline from scratch as its base model
(methods/loc/train.py), and the tests' tiny backbones (tiny_backbones.py) are made of the same
parts: a small CLIP text encoder and a tokenizer written from a few words.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

TEXT_WIDTH = 32
VOCABULARY = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "person", "image", "the"]
SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                    set_alpha_to_one=False, steps_offset=1)
"""Stable Diffusion's DDIM settings."""


IP2P_SIZES = {
    # Tests: a few thousand weights.
    "tiny": dict(unet_widths=(8, 16), head_width=4, vae_widths=(4, 8)),
    # The `loc` method's `cpu` preset trains this one from scratch.
    "small": dict(unet_widths=(32, 64), head_width=16, vae_widths=(16, 32)),
}


def build_ip2p_pipeline(sizes: dict, seed: int = 0):
    """A random InstructPix2Pix pipeline: a UNet with 8 input channels (the noised latent and the
    query image's latent side by side), a tiny CLIP text encoder and a VAE that halves the side
    once per width after the first (Stable Diffusion's has four widths: 1/8)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    widths, head, vae_widths = tuple(sizes["unet_widths"]), sizes["head_width"], sizes["vae_widths"]
    sources = Path(tempfile.mkdtemp(prefix="analogize-tiny-tokenizers-"))
    pipeline = StableDiffusionInstructPix2PixPipeline(
        unet=UNet2DConditionModel(
            block_out_channels=widths, layers_per_block=1, sample_size=32, in_channels=8, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT_WIDTH,
            norm_num_groups=min(8, widths[0]), attention_head_dim=head,
        ),
        vae=AutoencoderKL(
            block_out_channels=tuple(vae_widths), in_channels=3, out_channels=3, layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * len(vae_widths), up_block_types=("UpDecoderBlock2D",) * len(vae_widths),
            latent_channels=4, norm_num_groups=min(8, vae_widths[0]), sample_size=32,
        ),
        text_encoder=CLIPTextModel(tiny_clip_text_config()),
        tokenizer=write_clip_tokenizer(sources / "clip"),
        scheduler=DDIMScheduler(**SD_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    shutil.rmtree(sources)
    return pipeline


def tiny_clip_text_config():
    """The text encoder every tiny Stable Diffusion family shares."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=TEXT_WIDTH, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000, projection_dim=TEXT_WIDTH,
    )


def write_clip_tokenizer(folder: Path):
    """A CLIP BPE tokenizer that spells words letter by letter (no merges): its files are
    written to `folder`, then read, as a downloaded tokenizer would be."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = sorted({letter for word in VOCABULARY[3:] for letter in word})
    tokens = ["<|startoftext|>", "<|endoftext|>"] + letters + [f"{letter}</w>" for letter in letters]
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
