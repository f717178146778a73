#!/usr/bin/env python3
"""Runs diffusers' StableDiffusionPipeline on the tiny fixture models for the sampler tests.

A dev tool (torch, diffusers, transformers; torchsde for DPMSolverSDEScheduler). Prompts are given as token ids (the tiny
text encoders have a 1000-token vocabulary), encoded by the model's own text encoder
and passed as prompt_embeds; seeds are per image (generator list: seed, seed+1, ...).
Output: Tests/StableDiffusionTests/Fixtures/pipelines.json (and img2img, controlnet, inpaint, sde .json)
"""
import json
import pathlib

import numpy as np
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

here = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
from fixture_samplers import EXACT, SAMPLERS  # noqa: E402  (Tools/, next to this script)
from fixture_support import encode, latents_and_pixels, load_parts, prompt_ids, sd_pipeline  # noqa: E402
cases = []
torch.set_num_threads(1)
for model in ("tiny-sd1", "tiny-sd2"):
    folder = here / "models" / model
    text, unet, vae = load_parts(folder)
    ids, negative_ids = prompt_ids(torch.Generator().manual_seed(5))
    embeds, negative = encode(text, ids, negative_ids)
    for name in (EXACT if model == "tiny-sd1" else ("ddim", "euler", "dpmpp_2m", "pndm", "heun", "unipc", "dpm2")):
        pipe = sd_pipeline(StableDiffusionPipeline, SAMPLERS, name, folder, text, unet, vae)
        settings = {"width": 24, "height": 16, "steps": 6, "guidance": 7.5, "seed": 42, "batch": 2}
        kwargs = dict(prompt_embeds=embeds.repeat(2, 1, 1), negative_prompt_embeds=negative.repeat(2, 1, 1),
                      width=24, height=16, num_inference_steps=6, guidance_scale=7.5)
        latents, pixels = latents_and_pixels(pipe, kwargs, [42, 43])
        cases.append({"model": model, "sampler": name, "settings": settings, "ids": ids[0].tolist(),
                      "negative_ids": negative_ids[0].tolist(), "latents_shape": list(latents.shape),
                      "latents": latents.flatten().tolist(), "pixels": pixels})
        print(model, name, latents.abs().mean().item())
(here / "pipelines.json").write_text(json.dumps({"cases": cases}))

# img2img: diffusers' StableDiffusionImg2ImgPipeline on the same models, from a random init image.
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

img_cases = []
for model in ("tiny-sd1", "tiny-sd2"):
    folder = here / "models" / model
    text, unet, vae = load_parts(folder)
    g = torch.Generator().manual_seed(11)
    ids, negative_ids = prompt_ids(g)
    init = torch.randint(0, 256, (16, 24, 3), generator=g).to(torch.uint8)
    embeds, negative = encode(text, ids, negative_ids)
    for name in (("euler", "ddim", "euler_a", "dpmpp_2m", "heun", "dpm2", "unipc", "lcm") if model == "tiny-sd1"
                 else ("euler", "ddim")):
        pipe = sd_pipeline(StableDiffusionImg2ImgPipeline, SAMPLERS, name, folder, text, unet, vae)
        kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=negative, image=Image.fromarray(init.numpy()),
                      num_inference_steps=8, strength=0.6, guidance_scale=6.0)
        latents, pixels = latents_and_pixels(pipe, kwargs, [3])
        img_cases.append({"model": model, "sampler": name, "strength": 0.6, "guidance": 6.0, "steps": 8, "seed": 3,
                          "ids": ids[0].tolist(), "negative_ids": negative_ids[0].tolist(),
                          "init": init.flatten().tolist(), "width": 24, "height": 16,
                          "latents_shape": list(latents.shape), "latents": latents.flatten().tolist(),
                          "pixels": pixels})
        print("img2img", model, name, latents.abs().mean().item())
(here / "img2img.json").write_text(json.dumps({"cases": img_cases}))

# ControlNet: diffusers' StableDiffusionControlNetPipeline with one and with two ControlNets.
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

control_cases = []
folder = here / "models" / "tiny-sd1"
text, unet, vae = load_parts(folder)
controlnet = ControlNetModel.from_pretrained(here / "models" / "tiny-controlnet").eval()
g = torch.Generator().manual_seed(21)
ids, negative_ids = prompt_ids(g)
control = torch.randint(0, 256, (16, 24, 3), generator=g).to(torch.uint8)
control2 = torch.randint(0, 256, (16, 24, 3), generator=g).to(torch.uint8)
embeds, negative = encode(text, ids, negative_ids)
for name, nets, images, scales in (("euler", controlnet, Image.fromarray(control.numpy()), 0.8),
                                   ("dpmpp_2m", [controlnet, controlnet],
                                    [Image.fromarray(control.numpy()), Image.fromarray(control2.numpy())], [0.7, 0.4])):
    pipe = sd_pipeline(StableDiffusionControlNetPipeline, SAMPLERS, name, folder, text, unet, vae, controlnet=nets)
    kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=negative, image=images, width=24, height=16,
                  num_inference_steps=5, guidance_scale=7.0, controlnet_conditioning_scale=scales)
    latents, pixels = latents_and_pixels(pipe, kwargs, [9])
    control_cases.append({"sampler": name, "scales": scales if isinstance(scales, list) else [scales],
                          "controls": [control.flatten().tolist()] + ([control2.flatten().tolist()] if isinstance(nets, list) else []),
                          "ids": ids[0].tolist(), "negative_ids": negative_ids[0].tolist(), "steps": 5, "guidance": 7.0,
                          "seed": 9, "width": 24, "height": 16, "latents_shape": list(latents.shape),
                          "latents": latents.flatten().tolist(), "pixels": pixels})
    print("controlnet", name, latents.abs().mean().item())
(here / "controlnet.json").write_text(json.dumps({"cases": control_cases}))

# Inpainting: diffusers' StableDiffusionInpaintPipeline with the ordinary 4-channel UNet
# (mask blending) and with the 9-channel inpainting UNet.
from diffusers import StableDiffusionInpaintPipeline

inpaint_cases = []
folder = here / "models" / "tiny-sd1"
g = torch.Generator().manual_seed(31)
ids, negative_ids = prompt_ids(g)
source = torch.randint(0, 256, (16, 24, 3), generator=g).to(torch.uint8)
mask = torch.zeros(16, 24, dtype=torch.uint8)
mask[2:12, 4:15] = 255
embeds, negative = encode(text, ids, negative_ids)
for unet_name, name, strength in (("unet", "euler", 1.0), ("unet", "ddim", 0.75), ("inpaint", "euler", 1.0),
                                  ("inpaint", "dpmpp_2m", 1.0)):
    model_unet = unet if unet_name == "unet" else UNet2DConditionModel.from_pretrained(here / "models" / "tiny-inpaint-unet").eval()
    pipe = sd_pipeline(StableDiffusionInpaintPipeline, SAMPLERS, name, folder, text, model_unet, vae)
    kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=negative, image=Image.fromarray(source.numpy()),
                  mask_image=Image.fromarray(mask.numpy(), mode="L"), width=24, height=16, num_inference_steps=6,
                  guidance_scale=7.0, strength=strength)
    latents, pixels = latents_and_pixels(pipe, kwargs, [13])
    inpaint_cases.append({"unet": unet_name, "sampler": name, "strength": strength, "ids": ids[0].tolist(),
                          "negative_ids": negative_ids[0].tolist(), "image": source.flatten().tolist(),
                          "mask": mask.flatten().tolist(), "steps": 6, "guidance": 7.0, "seed": 13, "width": 24,
                          "height": 16, "latents_shape": list(latents.shape), "latents": latents.flatten().tolist(),
                          "pixels": pixels})
    print("inpaint", unet_name, name, strength, latents.abs().mean().item())
(here / "inpaint.json").write_text(json.dumps({"cases": inpaint_cases}))

# DPM++ SDE Karras: diffusers' noise comes from torchsde's Brownian tree, seeded from torch's
# global RNG, which no seed of ours reproduces. Two kinds of fixture instead:
# - zero_noise: the solver's deterministic part, the noise sampler replaced by one that returns
#   zeros (the Swift test passes a noise closure that returns zeros), compared exactly;
# - statistics: RUNS real runs of one batch with the same generators (the same initial latents)
#   and torch.manual_seed(run) for the tree: each latent's mean and standard deviation over the
#   runs, and each run's overall mean and standard deviation, to test a Swift run against.
import diffusers.schedulers.scheduling_dpmsolver_sde as dpmsolver_sde


class ZeroNoiseSampler:
    def __init__(self, x, *args, **kwargs):
        self.shape = x.shape

    def __call__(self, sigma, sigma_next):
        return torch.zeros(self.shape)


RUNS = 32
sde = {"zero_noise": [], "statistics": []}
for model in ("tiny-sd1", "tiny-sd2"):
    folder = here / "models" / model
    text, unet, vae = load_parts(folder)
    ids, negative_ids = prompt_ids(torch.Generator().manual_seed(41))
    embeds, negative = encode(text, ids, negative_ids)
    pipe = sd_pipeline(StableDiffusionPipeline, SAMPLERS, "dpmpp_sde_karras", folder, text, unet, vae)

    def run(batch, tree_seed):
        torch.manual_seed(tree_seed)
        generators = [torch.Generator().manual_seed(42 + i) for i in range(batch)]
        with torch.no_grad():
            return pipe(prompt_embeds=embeds.repeat(batch, 1, 1), negative_prompt_embeds=negative.repeat(batch, 1, 1),
                        width=24, height=16, num_inference_steps=6, guidance_scale=7.5, generator=generators,
                        output_type="latent").images

    settings = {"width": 24, "height": 16, "steps": 6, "guidance": 7.5, "seed": 42}
    real = dpmsolver_sde.BrownianTreeNoiseSampler
    dpmsolver_sde.BrownianTreeNoiseSampler = ZeroNoiseSampler
    latents = run(2, 0)
    dpmsolver_sde.BrownianTreeNoiseSampler = real
    sde["zero_noise"].append({"model": model, "settings": {**settings, "batch": 2}, "ids": ids[0].tolist(),
                              "negative_ids": negative_ids[0].tolist(), "latents_shape": list(latents.shape),
                              "latents": latents.flatten().tolist()})
    print("sde zero noise", model, latents.abs().mean().item())
    if model != "tiny-sd1":
        continue
    runs = torch.stack([run(8, seed) for seed in range(RUNS)]).double()
    per_run = runs.flatten(1)
    mean, std = runs.mean(0), runs.std(0)
    sde["statistics"].append({"model": model, "settings": {**settings, "batch": 8}, "ids": ids[0].tolist(),
                              "negative_ids": negative_ids[0].tolist(), "runs": RUNS, "latents_shape": list(mean.shape),
                              "mean": mean.flatten().tolist(), "std": std.flatten().tolist(),
                              "run_means": per_run.mean(1).tolist(), "run_stds": per_run.std(1, unbiased=False).tolist()})
    print("sde statistics", model, per_run.mean().item(), std.mean().item())
(here / "sde.json").write_text(json.dumps(sde))
