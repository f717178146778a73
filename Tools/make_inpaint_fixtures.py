#!/usr/bin/env python3
"""Writes a second tiny inpainting model and diffusers' StableDiffusionInpaintPipeline runs on it.

A dev tool (pip install torch diffusers transformers safetensors pillow), never needed by the
test command: its output is committed under Tests/StableDiffusionTests/Fixtures/.

The existing inpainting fixtures (Tools/make_pipeline_fixtures.py, inpaint.json) use tiny-sd1,
whose VAE has 2 levels (latent scale 2). This model is shaped differently on purpose:

- models/tiny-inpaint2/       a complete diffusers folder (model_index.json, unet, vae,
                              text_encoder, tokenizer config, scheduler): a 9-channel UNet with
                              2 levels of widths (8, 12) and per-block heads (2, 4), a 3-level
                              VAE (latent scale 4, so sizes are multiples of 8), a CLIP text
                              encoder of width 20 with a 1000-token vocabulary; own seeds.
- models/tiny-inpaint2-unet4/ an ordinary 4-channel UNet of the same shape, for diffusers' mask
                              blending path with the same VAE and text encoder.
- inpaint2.json               cases in inpaint.json's record format plus "model", "mask_kind"
                              ("binary" or "soft": grey levels, which diffusers binarises at 0.5),
                              "batch" and "unet_folder" (the UNet to swap in, or null). Every
                              sampler of the exact set (see make_pipeline_fixtures.py) at strength
                              1 with a binary mask; soft masks; strengths 0.75 and 0.5; batches of 2
                              (generator list: seed, seed + 1); two non-square sizes; guidance 1.

Prompts are token ids encoded by the model's own text encoder and passed as prompt_embeds.
"""
import json
import pathlib
import shutil

import diffusers
import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                       KDPM2DiscreteScheduler, LCMScheduler, LMSDiscreteScheduler, PNDMScheduler,
                       StableDiffusionInpaintPipeline, UNet2DConditionModel, UniPCMultistepScheduler)
from PIL import Image

import fixture_samplers
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

fixtures = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
models = fixtures / "models"
NAME = "tiny-inpaint2"

# The samplers with exact diffusers fixtures (the SDE one has its own, statistical ones).
SAMPLERS = {name: fixture_samplers.SAMPLERS[name] for name in fixture_samplers.EXACT}


def unet_model(in_channels):
    return UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=2, block_out_channels=(8, 12),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=20, norm_num_groups=4, attention_head_dim=(2, 4))


def randomise(model, scale):
    # Random, not zero-initialised, weights everywhere (diffusers zero-inits some).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * scale)


def build():
    torch.manual_seed(71)
    unet = unet_model(9)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 12, 16),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=4, sample_size=32)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=20, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=20, pad_token_id=1,
        bos_token_id=49406, eos_token_id=49407))
    for model in (unet, vae, text):
        randomise(model, 0.2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    folder = models / NAME
    shutil.rmtree(folder, ignore_errors=True)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    # Name the text encoder's weights as released checkpoints do (`text_model.` prefix; transformers 5 drops it).
    save_file({(k if k.startswith("text_model.") else "text_model." + k): x.contiguous()
               for k, x in text.state_dict().items()},
              str(folder / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
    scheduler.save_pretrained(folder / "scheduler")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {"pad_token": "<|endoftext|>", "model_max_length": 77}, indent=1))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionInpaintPipeline", "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "requires_safety_checker": False}, indent=1))

    torch.manual_seed(72)
    unet4 = unet_model(4)
    randomise(unet4, 0.2)
    shutil.rmtree(models / f"{NAME}-unet4", ignore_errors=True)
    unet4.save_pretrained(models / f"{NAME}-unet4")
    for path in [*folder.rglob("*"), *(models / f"{NAME}-unet4").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def masks(width, height):
    """A binary rectangle off the latent grid, and a soft mask of grey levels (both sides of 0.5)."""
    binary = np.zeros((height, width), np.uint8)
    binary[3:height - 5, 5:width - 9] = 255
    y, x = np.mgrid[0:height, 0:width]
    ramp = x / (width - 1) * 0.7 + y / (height - 1) * 0.3
    soft = np.round(255 * ramp).astype(np.uint8)
    soft[1, :] = 127  # just under the threshold (127/255 < 0.5)
    soft[2, :] = 128  # just over it
    return {"binary": binary, "soft": soft}


# (unet, sampler, strength, mask kind, batch, width, height, guidance)
CASES = [("inpaint", name, 1.0, "binary", 1, 40, 24, 7.0) for name in SAMPLERS] + [
    ("inpaint", "ddim", 1.0, "soft", 1, 40, 24, 7.0),
    ("inpaint", "euler_a", 1.0, "soft", 1, 40, 24, 7.0),
    ("inpaint", "dpmpp_2m_karras", 1.0, "soft", 1, 40, 24, 7.0),
    ("inpaint", "unipc", 1.0, "soft", 1, 40, 24, 7.0),
    ("inpaint", "euler", 0.75, "binary", 1, 40, 24, 7.0),
    ("inpaint", "dpm2", 0.75, "binary", 1, 40, 24, 7.0),
    ("inpaint", "pndm", 0.75, "soft", 1, 40, 24, 7.0),
    ("inpaint", "heun", 0.75, "soft", 1, 40, 24, 7.0),
    ("inpaint", "lcm", 0.75, "soft", 1, 40, 24, 7.0),
    ("inpaint", "lms", 0.5, "binary", 1, 40, 24, 7.0),
    ("inpaint", "ddpm", 0.5, "binary", 1, 40, 24, 7.0),
    ("inpaint", "ddim", 0.5, "soft", 1, 40, 24, 7.0),
    ("inpaint", "dpmpp_2m", 0.5, "soft", 1, 40, 24, 7.0),
    ("inpaint", "euler", 1.0, "binary", 1, 40, 24, 1.0),
    ("inpaint", "heun", 1.0, "binary", 1, 24, 32, 7.0),
    ("inpaint", "ddim", 1.0, "binary", 2, 40, 24, 7.0),
    ("inpaint", "euler_a", 1.0, "soft", 2, 40, 24, 7.0),
    ("inpaint", "euler", 0.75, "binary", 2, 40, 24, 7.0),
    ("inpaint", "ddpm", 0.75, "soft", 2, 40, 24, 7.0),
    ("inpaint", "dpmpp_2m", 0.5, "soft", 2, 40, 24, 7.0),
    ("inpaint", "unipc", 0.75, "soft", 2, 24, 32, 7.0),
    ("unet", "euler", 1.0, "binary", 1, 40, 24, 7.0),
    ("unet", "ddim", 0.75, "soft", 2, 40, 24, 7.0),
    ("unet", "dpmpp_2m", 0.5, "binary", 1, 40, 24, 7.0),
    ("unet", "euler_a", 1.0, "soft", 2, 24, 32, 7.0),
    ("unet", "heun", 0.75, "binary", 1, 40, 24, 7.0),
    ("unet", "pndm", 1.0, "soft", 1, 40, 24, 7.0),
    ("unet", "lcm", 0.5, "binary", 2, 40, 24, 7.0),
]


def run_cases():
    folder = models / NAME
    text = CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    unets = {"inpaint": UNet2DConditionModel.from_pretrained(folder / "unet").eval(),
             "unet": UNet2DConditionModel.from_pretrained(models / f"{NAME}-unet4").eval()}
    g = torch.Generator().manual_seed(73)
    ids = torch.randint(0, 1000, (1, 77), generator=g)
    negative_ids = torch.randint(0, 1000, (1, 77), generator=g)
    sources = {size: torch.randint(0, 256, (size[1], size[0], 3), generator=g).to(torch.uint8).numpy()
               for size in ((40, 24), (24, 32))}
    with torch.no_grad():
        embeds, negative = text(ids).last_hidden_state, text(negative_ids).last_hidden_state
    cases = []
    for number, (unet_name, name, strength, mask_kind, batch, width, height, guidance) in enumerate(CASES):
        cls, extra = SAMPLERS[name]
        pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unets[unet_name],
                                              scheduler=cls.from_pretrained(folder / "scheduler", **extra),
                                              safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        source, mask = sources[(width, height)], masks(width, height)[mask_kind]
        seed = 200 + 10 * number
        kwargs = dict(prompt_embeds=embeds.repeat(batch, 1, 1), negative_prompt_embeds=negative.repeat(batch, 1, 1),
                      image=Image.fromarray(source), mask_image=Image.fromarray(mask, mode="L"), width=width,
                      height=height, num_inference_steps=6, guidance_scale=guidance, strength=strength)
        with torch.no_grad():
            generators = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
            latents = pipe(**kwargs, generator=generators, output_type="latent").images
            generators = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
            out = pipe(**kwargs, generator=generators, output_type="np").images
        pixels = (out * 255).round().astype("uint8")
        cases.append({"model": NAME, "unet": unet_name,
                      "unet_folder": None if unet_name == "inpaint" else f"{NAME}-unet4", "sampler": name,
                      "strength": strength, "mask_kind": mask_kind, "batch": batch, "ids": ids[0].tolist(),
                      "negative_ids": negative_ids[0].tolist(), "image": source.flatten().tolist(),
                      "mask": mask.flatten().tolist(), "steps": 6, "guidance": guidance, "seed": seed,
                      "width": width, "height": height, "latents_shape": list(latents.shape),
                      "latents": [round(x, 6) for x in latents.flatten().tolist()],
                      "pixels": pixels.flatten().tolist()})
        mid = ((pixels > 0) & (pixels < 255)).mean()
        print(f"{unet_name:7} {name:15} strength {strength} {mask_kind:6} batch {batch} {width}x{height} "
              f"|latents| {latents.abs().mean().item():.3f} unsaturated pixels {mid:.2f}")
    (fixtures / "inpaint2.json").write_text(json.dumps({"cases": cases}, separators=(",", ":")))


if __name__ == "__main__":
    torch.set_num_threads(1)
    build()
    run_cases()
