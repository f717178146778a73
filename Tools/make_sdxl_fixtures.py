#!/usr/bin/env python3
"""Writes a tiny random-weight SDXL (base, refiner, 9-channel inpainting UNet, ControlNet) and runs diffusers' SDXL
pipelines on it for the parity tests.

A dev tool (pip install torch diffusers transformers safetensors), never needed by the test command; its output is
committed under Tests/StableDiffusionTests/Fixtures/:

- models/tiny-sdxl/          a diffusers SDXL folder: two text encoders of different widths (CLIP-L-like with
                             quick-GELU; OpenCLIP-bigG-like with GELU and a text projection), a three-level UNet with
                             per-block transformer depths (1, 2, 3) and `text_time` added embeddings, a three-level VAE
                             (scaling 0.13025); the UNet also as an fp16 variant
- models/tiny-sdxl-refiner/  a refiner: only the second text encoder, a UNet with the aesthetic-score embedding
- models/tiny-sdxl-inpaint-unet/, models/tiny-sdxl-controlnet/
- models/tiny-sdxl-vae/, models/tiny-sdxl-vae.safetensors
                             another VAE for the `--vae` override, as a diffusers folder and as an LDM single file
- sdxl.json                  the cases: token ids, the text encodings, and final latents and pixels

Prompts are token ids of the tiny 1000-token vocabulary: 998 starts a prompt, 999 ends it (the largest id, as
CLIP's end token is, so the pooled output is taken where the real one is), then padding: the end token for the first
tokenizer, `!` (0) for the second, as SDXL's two tokenizers pad. The encodings are computed as diffusers'
`encode_prompt` computes them (penultimate hidden states of both encoders side by side, the second encoder's
projected pooled output) and passed to the pipelines as `prompt_embeds`.
"""
import json
import pathlib
import shutil

import diffusers
import numpy as np
import torch
from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLControlNetPipeline,
                       StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from fixture_samplers import SAMPLERS  # noqa: E402  (Tools/, next to this script)
from make_model_fixtures import vae_to_ldm  # noqa: E402

fixtures = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
models = fixtures / "models"
WIDTH, HEIGHT = 48, 32  # non-square; the UNet's grid is 4 (VAE) × 4 (two downsamplers) = 16 pixels
torch.set_num_threads(1)


def randomise(model, scale):
    # Random, not zero-initialised, weights everywhere (diffusers zero-inits some, ControlNet's zero convolutions).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * scale)


def text_config(width, layers, act, projection):
    return CLIPTextConfig(vocab_size=1000, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                          num_attention_heads=4, max_position_embeddings=77, hidden_act=act, projection_dim=projection,
                          pad_token_id=1, bos_token_id=998, eos_token_id=2)


def unet_model(in_channels, blocks, down, up, depths, heads, context, aesthetic):
    return UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=4, layers_per_block=2, block_out_channels=blocks,
        down_block_types=down, up_block_types=up, transformer_layers_per_block=depths, attention_head_dim=heads,
        cross_attention_dim=context, norm_num_groups=8, use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=40 + (5 if aesthetic else 6) * 8)


def scheduler():
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                  timestep_spacing="leading", interpolation_type="linear")


def save_text(model, folder):
    model.save_pretrained(folder)
    # Name the weights as released checkpoints do (`text_model.` prefix; transformers 5 drops it).
    save_file({(k if k.startswith("text_model.") or k.startswith("text_projection") else "text_model." + k): x.contiguous()
               for k, x in model.state_dict().items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})


def model_index(folder, cls, components, **extra):
    index = {"_class_name": cls, "_diffusers_version": diffusers.__version__, **components, **extra}
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))


def tokenizer(folder, pad):
    folder.mkdir(parents=True)
    (folder / "tokenizer_config.json").write_text(json.dumps({"pad_token": pad, "model_max_length": 77}, indent=1))


def build():
    torch.manual_seed(81)
    blocks = (16, 32, 48)
    text1 = CLIPTextModel(text_config(32, 3, "quick_gelu", 32))
    text2 = CLIPTextModelWithProjection(text_config(48, 3, "gelu", 40))
    unet = unet_model(4, blocks, ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                      ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), (1, 2, 3), (2, 4, 6), 80, False)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=0.13025)
    for model in (text1, text2, unet, vae):
        randomise(model, 0.15)
    folder = models / "tiny-sdxl"
    shutil.rmtree(folder, ignore_errors=True)
    unet.save_pretrained(folder / "unet")
    unet.to(torch.float16).save_pretrained(folder / "unet", variant="fp16")
    unet.to(torch.float32)
    vae.save_pretrained(folder / "vae")
    save_text(text1, folder / "text_encoder")
    save_text(text2, folder / "text_encoder_2")
    scheduler().save_pretrained(folder / "scheduler")
    tokenizer(folder / "tokenizer", "<|endoftext|>")
    tokenizer(folder / "tokenizer_2", "!")
    model_index(folder, "StableDiffusionXLPipeline", {
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"]}, force_zeros_for_empty_prompt=True)

    torch.manual_seed(82)
    refiner_unet = unet_model(4, (16, 24, 32), ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                              ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), (2, 1, 2), (2, 4, 6), 48, True)
    randomise(refiner_unet, 0.15)
    refiner = models / "tiny-sdxl-refiner"
    shutil.rmtree(refiner, ignore_errors=True)
    refiner_unet.save_pretrained(refiner / "unet")
    vae.save_pretrained(refiner / "vae")
    save_text(text2, refiner / "text_encoder_2")
    scheduler().save_pretrained(refiner / "scheduler")
    tokenizer(refiner / "tokenizer_2", "!")
    model_index(refiner, "StableDiffusionXLImg2ImgPipeline", {
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": [None, None], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": [None, None], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"]},
        force_zeros_for_empty_prompt=False, requires_aesthetics_score=True)

    torch.manual_seed(83)
    inpaint_unet = unet_model(9, blocks, ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                              ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), (1, 2, 1), (2, 4, 6), 80, False)
    randomise(inpaint_unet, 0.15)
    shutil.rmtree(models / "tiny-sdxl-inpaint-unet", ignore_errors=True)
    inpaint_unet.save_pretrained(models / "tiny-sdxl-inpaint-unet")

    torch.manual_seed(84)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16))
    randomise(controlnet, 0.15)
    shutil.rmtree(models / "tiny-sdxl-controlnet", ignore_errors=True)
    controlnet.save_pretrained(models / "tiny-sdxl-controlnet")
    torch.manual_seed(85)
    alternative = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
                                down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                                layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=0.13025)
    randomise(alternative, 0.15)
    shutil.rmtree(models / "tiny-sdxl-vae", ignore_errors=True)
    alternative.save_pretrained(models / "tiny-sdxl-vae")
    save_file({k: v.contiguous() for k, v in vae_to_ldm(alternative.state_dict(), 3).items()},
              str(models / "tiny-sdxl-vae.safetensors"), metadata={"format": "pt"})
    (models / "tiny-sdxl-vae.safetensors").chmod(0o644)
    for root in (folder, refiner, models / "tiny-sdxl-inpaint-unet", models / "tiny-sdxl-controlnet", models / "tiny-sdxl-vae"):
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)


def load():
    folder = models / "tiny-sdxl"
    text1 = CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
    text2 = CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2").eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    refiner_unet = UNet2DConditionModel.from_pretrained(models / "tiny-sdxl-refiner" / "unet").eval()
    return text1, text2, unet, vae, refiner_unet


def prompt(g, length):
    """Token rows for both tokenizers: start, `length` random tokens, end, then each tokenizer's padding."""
    body = [998] + torch.randint(1, 998, (length,), generator=g).tolist() + [999]
    return body + [999] * (77 - len(body)), body + [0] * (77 - len(body))


def encode(encoders, rows):
    """diffusers' encode_prompt on token rows: penultimate hidden states side by side, the last encoder's pooled
    projection."""
    with torch.no_grad():
        hidden, pooled = [], None
        for encoder, row in zip(encoders, rows):
            out = encoder(torch.tensor([row]), output_hidden_states=True)
            if out[0].ndim == 2:
                pooled = out[0]
            hidden.append(out.hidden_states[-2])
        return torch.cat(hidden, dim=-1), pooled


def pipe(cls, sampler, **parts):
    scheduler_class, extra = SAMPLERS[sampler]
    config = scheduler().config
    p = cls(scheduler=scheduler_class.from_config(config, **extra), **parts)
    p.set_progress_bar_config(disable=True)
    return p


def run(p, kwargs, seeds, latent_only=False):
    with torch.no_grad():
        kwargs = dict(kwargs, num_images_per_prompt=len(seeds))
        latents = p(**kwargs, generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="latent").images
        if latent_only:
            return latents, None
        images = p(**kwargs, generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="np").images
    return latents, (images * 255).round().astype("uint8").flatten().tolist()


def flat(t):
    return t.flatten().tolist()


def main():
    build()
    text1, text2, unet, vae, refiner_unet = load()
    parts = dict(vae=vae, text_encoder=text1, text_encoder_2=text2, tokenizer=None, tokenizer_2=None, unet=unet)
    g = torch.Generator().manual_seed(7)
    positive, negative = prompt(g, 9), prompt(g, 5)
    embeds, pooled = encode((text1, text2), positive)
    negative_embeds, negative_pooled = encode((text1, text2), negative)
    out = {"prompt": {"ids": positive[0], "ids_2": positive[1], "embeds_shape": list(embeds.shape), "embeds": flat(embeds),
                      "pooled": flat(pooled)},
           "negative": {"ids": negative[0], "ids_2": negative[1]}, "width": WIDTH, "height": HEIGHT}
    conditioning = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=negative_embeds,
                        negative_pooled_prompt_embeds=negative_pooled)

    cases = []
    for sampler in ("euler", "euler_a", "ddim", "dpmpp_2m", "heun", "unipc", "lms", "dpm2", "pndm", "dpmpp_2m_karras"):
        p = pipe(StableDiffusionXLPipeline, sampler, **parts)
        kwargs = dict(conditioning, width=WIDTH, height=HEIGHT, num_inference_steps=5, guidance_scale=6.0)
        latents, pixels = run(p, kwargs, [42, 43])
        cases.append({"sampler": sampler, "steps": 5, "guidance": 6.0, "seed": 42, "batch": 2, "zero_negative": False,
                      "latents_shape": list(latents.shape), "latents": flat(latents), "pixels": pixels})
        print("txt2img", sampler, latents.abs().mean().item())
    # No negative prompt: force_zeros_for_empty_prompt gives zero encodings and pooled output.
    p = pipe(StableDiffusionXLPipeline, "euler", **parts)
    kwargs = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, width=WIDTH, height=HEIGHT, num_inference_steps=4,
                  guidance_scale=5.0)
    latents, pixels = run(p, kwargs, [5])
    cases.append({"sampler": "euler", "steps": 4, "guidance": 5.0, "seed": 5, "batch": 1, "zero_negative": True,
                  "latents_shape": list(latents.shape), "latents": flat(latents), "pixels": pixels})
    out["txt2img"] = cases
    # The `--vae` override: the first case's latents decoded by the other VAE.
    alternative = AutoencoderKL.from_pretrained(models / "tiny-sdxl-vae").eval()
    with torch.no_grad():
        first = torch.tensor(cases[0]["latents"]).reshape(cases[0]["latents_shape"])
        decoded = alternative.decode(first / alternative.config.scaling_factor).sample
    pixels = ((decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    out["alternative_vae_pixels"] = flat(pixels)

    g = torch.Generator().manual_seed(8)
    init = torch.randint(0, 256, (HEIGHT, WIDTH, 3), generator=g).to(torch.uint8)
    out["init"] = flat(init)
    cases = []
    for sampler in ("euler", "dpmpp_2m", "ddim"):
        p = pipe(StableDiffusionXLImg2ImgPipeline, sampler, **parts)
        kwargs = dict(conditioning, image=Image.fromarray(init.numpy()), num_inference_steps=8, strength=0.6,
                      guidance_scale=6.0)
        latents, pixels = run(p, kwargs, [3])
        cases.append({"sampler": sampler, "steps": 8, "strength": 0.6, "guidance": 6.0, "seed": 3,
                      "latents_shape": list(latents.shape), "latents": flat(latents), "pixels": pixels})
        print("img2img", sampler, latents.abs().mean().item())
    out["img2img"] = cases

    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8)
    mask[4:24, 10:33] = 255
    out["mask"] = flat(mask)
    inpaint_unet = UNet2DConditionModel.from_pretrained(models / "tiny-sdxl-inpaint-unet").eval()
    cases = []
    for unet_name, sampler, strength in (("unet", "euler", 1.0), ("unet", "ddim", 0.75), ("inpaint", "euler", 1.0),
                                         ("inpaint", "dpmpp_2m", 0.8)):
        p = pipe(StableDiffusionXLInpaintPipeline, sampler, **{**parts, "unet": unet if unet_name == "unet" else inpaint_unet})
        kwargs = dict(conditioning, image=Image.fromarray(init.numpy()), mask_image=Image.fromarray(mask.numpy(), mode="L"),
                      width=WIDTH, height=HEIGHT, num_inference_steps=6, guidance_scale=7.0, strength=strength)
        latents, pixels = run(p, kwargs, [13])
        cases.append({"unet": unet_name, "sampler": sampler, "steps": 6, "strength": strength, "guidance": 7.0,
                      "seed": 13, "latents_shape": list(latents.shape), "latents": flat(latents), "pixels": pixels})
        print("inpaint", unet_name, sampler, latents.abs().mean().item())
    out["inpaint"] = cases

    controlnet = ControlNetModel.from_pretrained(models / "tiny-sdxl-controlnet").eval()
    control = torch.randint(0, 256, (HEIGHT, WIDTH, 3), generator=g).to(torch.uint8)
    out["control"] = flat(control)
    cases = []
    for sampler, scale in (("euler", 0.8), ("dpmpp_2m", 0.5)):
        p = pipe(StableDiffusionXLControlNetPipeline, sampler, **parts, controlnet=controlnet)
        kwargs = dict(conditioning, image=Image.fromarray(control.numpy()), width=WIDTH, height=HEIGHT,
                      num_inference_steps=5, guidance_scale=7.0, controlnet_conditioning_scale=scale)
        latents, pixels = run(p, kwargs, [9])
        cases.append({"sampler": sampler, "scale": scale, "steps": 5, "guidance": 7.0, "seed": 9,
                      "latents_shape": list(latents.shape), "latents": flat(latents), "pixels": pixels})
        print("controlnet", sampler, latents.abs().mean().item())
    out["controlnet"] = cases

    # The refiner hand-off: the base denoises the first `switch` of the schedule (denoising_end) and returns latents;
    # the refiner, conditioned on the second encoder alone with aesthetic scores 6 and 2.5, denoises the rest
    # (denoising_start) from those latents without adding noise.
    refiner_parts = dict(vae=vae, text_encoder=None, text_encoder_2=text2, tokenizer=None, tokenizer_2=None,
                         unet=refiner_unet)
    refiner_embeds, refiner_pooled = encode((text2,), positive[1:])
    refiner_negative, refiner_negative_pooled = encode((text2,), negative[1:])
    cases = []
    for sampler, switch, steps in (("euler", 0.7, 8), ("dpmpp_2m", 0.6, 7), ("heun", 0.75, 6)):
        base = pipe(StableDiffusionXLPipeline, sampler, **parts)
        kwargs = dict(conditioning, width=WIDTH, height=HEIGHT, num_inference_steps=steps, guidance_scale=6.0,
                      denoising_end=switch)
        handed, _ = run(base, kwargs, [21, 22], latent_only=True)
        refine = pipe(StableDiffusionXLImg2ImgPipeline, sampler, **refiner_parts)
        refine.register_to_config(requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
        kwargs = dict(prompt_embeds=refiner_embeds, pooled_prompt_embeds=refiner_pooled,
                      negative_prompt_embeds=refiner_negative, negative_pooled_prompt_embeds=refiner_negative_pooled,
                      image=handed, num_inference_steps=steps, guidance_scale=6.0, denoising_start=switch)
        latents, pixels = run(refine, kwargs, [21, 22])
        cases.append({"sampler": sampler, "switch": switch, "steps": steps, "guidance": 6.0, "seed": 21, "batch": 2,
                      "handed_shape": list(handed.shape), "handed": flat(handed), "latents_shape": list(latents.shape),
                      "latents": flat(latents), "pixels": pixels})
        print("refiner", sampler, handed.abs().mean().item(), latents.abs().mean().item())
    out["refiner"] = cases
    out["refiner_prompt"] = {"embeds": flat(refiner_embeds), "pooled": flat(refiner_pooled)}
    (fixtures / "sdxl.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
