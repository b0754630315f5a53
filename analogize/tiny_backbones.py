"""Tiny random diffusers pipelines, written to a folder like a downloaded checkpoint.

No pretrained weights can be had here, so the code that loads real ones (backbones.py) is
exercised on these: the same classes and folder layout as FLUX.1, Stable Diffusion (XL, refiner)
and Kandinsky 2.2, with a few thousand random weights each, built from configs in the style of
diffusers' own tests. The tokenizers are written from a small vocabulary, never downloaded.

    folder = write_tiny_backbone("flux", tmp_path / "flux")      # or "sd" / "sd-v" / "sdxl" / "ip2p" / ...
    backbone = load_backbone(BackboneConfig(base_model=str(folder)))

"kandinsky" is the decoder; its prior is the separate family "kandinsky-prior", passed as
`load_backbone(config, prior=folder)`.

This is the testing layer: tests and benchmarks import it, production code never does (a test
checks: tests/test_layers.py). The random parts production also needs, for loc's `cpu` preset,
are in random_pipelines.py.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from .random_pipelines import (
    IP2P_SIZES,
    SD_SCHEDULER,
    TEXT_WIDTH,
    VOCABULARY,
    build_ip2p_pipeline,
    tiny_clip_text_config,
    write_clip_tokenizer,
)

TINY_FAMILIES = ("flux", "sd", "sd-v", "sdxl", "sdxl-refiner", "kandinsky", "kandinsky-prior", "ip2p")
SD_VAE = dict(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
              down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
              up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"])
"""The KL VAE of every Stable Diffusion family."""
def write_tiny_backbone(family: str, folder: Path, seed: int = 0) -> Path:
    """Build a tiny random pipeline of `family` ("flux"; "sd" = ε-prediction, "sd-v" =
    v-prediction; "sdxl"; "ip2p" = InstructPix2Pix; one of the builders below) and save it with
    `save_pretrained` into
    `folder`; returns `folder`."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {TINY_FAMILIES}")
    folder = Path(folder)
    if family == "ip2p":
        build_ip2p_pipeline(IP2P_SIZES["tiny"], seed).save_pretrained(folder, safe_serialization=True)
        return folder
    torch.manual_seed(seed)
    clip_config = tiny_clip_text_config()
    clip = CLIPTextModel(clip_config)
    sources = Path(tempfile.mkdtemp(prefix="analogize-tiny-tokenizers-"))
    clip_tokenizer = write_clip_tokenizer(sources / "clip")
    if family in BUILDERS:
        pipeline = BUILDERS[family](clip_config, clip_tokenizer)
    elif family == "flux":
        pipeline = FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(),
            vae=AutoencoderKL(
                sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                shift_factor=0.0609, scaling_factor=1.5035,
            ),
            text_encoder=clip,
            tokenizer=clip_tokenizer,
            text_encoder_2=T5EncoderModel(T5Config(
                vocab_size=len(VOCABULARY), d_model=TEXT_WIDTH, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
            )),
            tokenizer_2=write_t5_tokenizer(),
            transformer=FluxTransformer2DModel(
                patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, pooled_projection_dim=TEXT_WIDTH,
                axes_dims_rope=[4, 4, 8], guidance_embeds=True,
            ),
        )
    elif family == "sdxl":
        pipeline = StableDiffusionXLPipeline(
            unet=tiny_sdxl_unet(text_width=2 * TEXT_WIDTH, time_numbers=6),  # the two text encoders side by side
            vae=AutoencoderKL(**SD_VAE),
            text_encoder=clip,
            text_encoder_2=CLIPTextModelWithProjection(clip_config),
            tokenizer=clip_tokenizer,
            tokenizer_2=clip_tokenizer,
            scheduler=DDIMScheduler(**SD_SCHEDULER),
        )
    else:
        pipeline = StableDiffusionPipeline(
            unet=UNet2DConditionModel(
                block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT_WIDTH,
                norm_num_groups=2, attention_head_dim=2,
            ),
            vae=AutoencoderKL(**SD_VAE),
            text_encoder=clip,
            tokenizer=clip_tokenizer,
            scheduler=DDIMScheduler(**SD_SCHEDULER, prediction_type="v_prediction" if family == "sd-v" else "epsilon"),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipeline.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(sources)
    return folder


def tiny_clip_vision_config():
    """A CLIP vision model small enough for tests, four layers deep so Paint by Example's mapper
    rule ((layers + 1) // 5) gives it one block; it projects to the tiny UNets' cross-attention width."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=TEXT_WIDTH, intermediate_size=37, num_hidden_layers=4, num_attention_heads=4,
                            image_size=32, patch_size=8, projection_dim=TEXT_WIDTH)


def write_tiny_clip_vision(folder: Path, seed: int = 0) -> Path:
    """A tiny random CLIP vision model saved like a download (the exemplar encoder's start)."""
    from transformers import CLIPVisionModel

    torch.manual_seed(seed)
    CLIPVisionModel(tiny_clip_vision_config()).save_pretrained(folder)
    return Path(folder)


def write_tiny_paint_by_example(folder: Path, seed: int = 0) -> Path:
    """A tiny random Paint-by-Example checkpoint in the official diffusers layout, with the
    official scheduler config (PNDM, scaled-linear betas)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel

    from .methods.paint_by_example import ExemplarEncoder, PaintByExampleModel

    torch.manual_seed(seed)
    model = PaintByExampleModel(
        vae=AutoencoderKL(**SD_VAE),
        unet=UNet2DConditionModel(
            block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=9, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=TEXT_WIDTH, norm_num_groups=2, attention_head_dim=2,
        ),
        scheduler=PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                                set_alpha_to_one=False, steps_offset=1),
        image_encoder=ExemplarEncoder(tiny_clip_vision_config()),
    )
    return model.save_pretrained(folder)


def write_t5_tokenizer():
    """A T5 (unigram) tokenizer over VOCABULARY's words, built with the tokenizers library."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5TokenizerFast

    core = Tokenizer(models.Unigram([(word, 0.0) for word in VOCABULARY], unk_id=VOCABULARY.index("<unk>")))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return T5TokenizerFast(tokenizer_object=core, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                           extra_ids=0, model_max_length=16)


def tiny_sdxl_refiner(clip_config, clip_tokenizer):
    """stable-diffusion-xl-refiner-1.0's layout: an img2img pipeline with the second text encoder
    only, whose UNet takes (original size, crop corner, aesthetic score) instead of SDXL's six
    size numbers; empty prompts are encoded, not zeroed."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPTextModelWithProjection

    return StableDiffusionXLImg2ImgPipeline(
        unet=tiny_sdxl_unet(text_width=TEXT_WIDTH, time_numbers=5),
        vae=AutoencoderKL(**SD_VAE),
        text_encoder=None,
        tokenizer=None,
        text_encoder_2=CLIPTextModelWithProjection(clip_config),
        tokenizer_2=clip_tokenizer,
        scheduler=DDIMScheduler(**SD_SCHEDULER),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )


def tiny_sdxl_unet(text_width: int, time_numbers: int):
    """SDXL's UNet, attending to text of `text_width` and told the pooled text (TEXT_WIDTH) plus
    `time_numbers` micro-conditioning numbers, each embedded in 8."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2, norm_num_groups=2, use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, cross_attention_dim=text_width,
        projection_class_embeddings_input_dim=TEXT_WIDTH + time_numbers * 8,
    )


def tiny_kandinsky_decoder(clip_config, clip_tokenizer):
    """kandinsky-2-2-decoder's layout: a MoVQ autoencoder (its spatial norm has 32 groups, hence its
    width) and a UNet conditioned on a CLIP image embedding of TEXT_WIDTH numbers, predicting ε and
    a variance."""
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    return KandinskyV22Pipeline(
        unet=UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=8,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", attention_head_dim=4, norm_num_groups=4,
            addition_embed_type="image", encoder_hid_dim_type="image_proj", encoder_hid_dim=TEXT_WIDTH,
            cross_attention_dim=16, resnet_time_scale_shift="scale_shift",
        ),
        movq=VQModel(
            block_out_channels=[32, 32], in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
            down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
            up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
            norm_num_groups=8, norm_type="spatial", num_vq_embeddings=12, vq_embed_dim=4,
        ),
        scheduler=DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                                steps_offset=1),
    )


def tiny_kandinsky_prior(clip_config, clip_tokenizer):
    """kandinsky-2-2-prior's layout: text -> CLIP image embedding (TEXT_WIDTH numbers) by a prior
    transformer sampled with the UnCLIP scheduler, beside a CLIP image encoder."""
    from diffusers import KandinskyV22PriorPipeline, PriorTransformer, UnCLIPScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=8, embedding_dim=TEXT_WIDTH, num_layers=1,
                             num_embeddings=clip_tokenizer.model_max_length)
    prior.clip_std.data.fill_(1.0)  # the real prior's statistics of CLIP embeddings; zeros would erase every draw
    return KandinskyV22PriorPipeline(
        prior=prior,
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=TEXT_WIDTH, projection_dim=TEXT_WIDTH, image_size=32, patch_size=16, intermediate_size=37,
            num_attention_heads=4, num_hidden_layers=1, num_channels=3,
        )),
        text_encoder=CLIPTextModelWithProjection(clip_config),
        tokenizer=clip_tokenizer,
        scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample", clip_sample=True,
                                  clip_sample_range=10.0),
        image_processor=CLIPImageProcessor(size=32, crop_size=32),
    )


BUILDERS = {
    "sdxl-refiner": tiny_sdxl_refiner,
    "kandinsky": tiny_kandinsky_decoder,
    "kandinsky-prior": tiny_kandinsky_prior,
}
"""Families with a builder of their own, given the shared CLIP text config and tokenizer."""
