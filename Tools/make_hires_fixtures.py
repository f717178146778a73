#!/usr/bin/env python3
"""Writes hires-fix, latent-upscale and latent-resize img2img runs of diffusers for the finishing tests (dev tool;
torch, diffusers, transformers).

- interpolate: torch.nn.functional.interpolate(x, size, mode, align_corners=False, antialias=…) on a random [1, 4, 5, 7]
  tensor for every latent upscaler the web UI offers, up and down.
- hires: hires fix composed in diffusers as the web UI runs it: StableDiffusionPipeline to latents
  (output_type="latent"), the same interpolate to the larger size (cropped centred when both target sides are given,
  in latent cells), then StableDiffusionImg2ImgPipeline on those latents with fresh generators of the same seeds
  (the web UI makes a new ImageRNG of the same seeds for its second pass).
- latent_resize: img2img resize mode 3: the init image encoded at its own size (posterior sample from the image's
  generator), the latents resized bilinearly to the render's, then StableDiffusionImg2ImgPipeline on them with that
  same generator.
Prompts are token ids encoded by the tiny model's text encoder and passed as prompt_embeds.
Output: Tests/StableDiffusionTests/Fixtures/hires.json
"""
import json
import pathlib
import sys

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_samplers import SAMPLERS  # noqa: E402
from fixture_support import encode, load_parts, prompt_ids, sd_pipeline  # noqa: E402

here = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
torch.set_num_threads(1)
MODES = {"nearest": ("nearest", False), "nearest-exact": ("nearest-exact", False), "bilinear": ("bilinear", False),
         "bicubic": ("bicubic", False), "bilinear-antialiased": ("bilinear", True), "bicubic-antialiased": ("bicubic", True)}


def interpolate(x, size, name):
    """The web UI's latent upscale: interpolate with align_corners=False for the linear and cubic modes."""
    mode, antialias = MODES[name]
    if mode.startswith("nearest"):
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=antialias)


source = torch.randn((1, 4, 5, 7), generator=torch.Generator().manual_seed(77))
interpolations = []
for size in [(10, 14), (8, 11), (3, 4), (5, 7)]:
    for name in MODES:
        interpolations.append({"mode": name, "size": list(size), "output": interpolate(source, size, name).flatten().tolist()})

folder = here / "models" / "tiny-sd1"
text, unet, vae = load_parts(folder)
scale = 2 ** (len(vae.config.block_out_channels) - 1)
ids, negative_ids = prompt_ids(torch.Generator().manual_seed(29))
embeds, negative = encode(text, ids, negative_ids)
hires = []
for sampler, upscaler, seeds, target, upscaled, steps, hires_steps, denoise in [
    ("euler", "bilinear", [42], (48, 32), (48, 32), 6, 6, 0.6),
    ("euler_a", "bicubic-antialiased", [42, 43], (40, 24), (40, 26), 6, 5, 0.5),
    ("dpmpp_2m", "nearest-exact", [7], (48, 32), (48, 32), 5, 8, 0.75),
]:
    base = sd_pipeline(StableDiffusionPipeline, SAMPLERS, sampler, folder, text, unet, vae)
    second = sd_pipeline(StableDiffusionImg2ImgPipeline, SAMPLERS, sampler, folder, text, unet, vae)
    n = len(seeds)
    with torch.no_grad():
        first = base(prompt_embeds=embeds.repeat(n, 1, 1), negative_prompt_embeds=negative.repeat(n, 1, 1), width=24, height=16,
                     num_inference_steps=steps, guidance_scale=7.5, output_type="latent",
                     generator=[torch.Generator().manual_seed(s) for s in seeds]).images
        cells = (upscaled[1] // scale, upscaled[0] // scale)
        final = (target[1] // scale, target[0] // scale)
        big = interpolate(first, cells, upscaler)
        crop_y, crop_x = cells[0] - final[0], cells[1] - final[1]
        big = big[:, :, crop_y // 2:cells[0] - (crop_y + 1) // 2, crop_x // 2:cells[1] - (crop_x + 1) // 2]
        latents = second(prompt_embeds=embeds.repeat(n, 1, 1), negative_prompt_embeds=negative.repeat(n, 1, 1), image=big,
                         strength=denoise, num_inference_steps=hires_steps, guidance_scale=7.5, output_type="latent",
                         generator=[torch.Generator().manual_seed(s) for s in seeds]).images
    hires.append({"sampler": sampler, "upscaler": upscaler, "seed": seeds[0], "batch": n, "width": 24, "height": 16,
                  "steps": steps, "guidance": 7.5, "hires_width": target[0], "hires_height": target[1],
                  "upscaled_width": upscaled[0], "upscaled_height": upscaled[1], "hires_steps": hires_steps,
                  "denoise": denoise, "ids": ids[0].tolist(), "negative_ids": negative_ids[0].tolist(),
                  "first": first.flatten().tolist(), "latents_shape": list(latents.shape), "latents": latents.flatten().tolist()})
    print("hires", sampler, upscaler, latents.abs().mean().item())

# img2img resize mode 3: a 20x12 init image rendered at 24x16.
g = torch.Generator().manual_seed(31)
init = torch.randint(0, 256, (12, 20, 3), generator=g).to(torch.uint8)
pixels = init.permute(2, 0, 1)[None].float() / 255 * 2 - 1
pipe = sd_pipeline(StableDiffusionImg2ImgPipeline, SAMPLERS, "euler", folder, text, unet, vae)
with torch.no_grad():
    generator = torch.Generator().manual_seed(5)
    encoded = vae.encode(pixels).latent_dist.sample(generator) * vae.config.scaling_factor
    resized = F.interpolate(encoded, size=(16 // scale, 24 // scale), mode="bilinear")
    latents = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, image=resized, strength=0.6, num_inference_steps=8,
                   guidance_scale=6.0, output_type="latent", generator=generator).images
latent_resize = {"seed": 5, "width": 24, "height": 16, "steps": 8, "guidance": 6.0, "strength": 0.6, "init_width": 20,
                 "init_height": 12, "init_pixels": init.flatten().tolist(), "ids": ids[0].tolist(),
                 "negative_ids": negative_ids[0].tolist(), "latents_shape": list(latents.shape),
                 "latents": latents.flatten().tolist()}
print("latent resize", latents.abs().mean().item())
(here / "hires.json").write_text(json.dumps({"interpolate": {"source": source.flatten().tolist(), "cases": interpolations},
                                             "hires": hires, "latent_resize": latent_resize}))
