#!/usr/bin/env python3
"""Runs the few-step shortcuts through their reference packages on the tiny SD 1.5 model, for FewStepTests.swift.

A dev tool (torch, diffusers, transformers, and `pip install tomesd DeepCache`):
- token merging: `tomesd.apply_patch(pipe, ratio=r, use_rand=False)` (the web UI's call: merge the self-attention
  input of the highest-resolution transformer blocks, 2×2 cells with the top-left token as destination);
- DeepCache: `DeepCacheSDHelper(pipe).set_params(cache_interval=n, cache_branch_id=b)`;
- the LCM path: LCMScheduler, 4 steps, guidance 1 (diffusers skips the unconditional pass), also with a LoRA over the
  attention and resnet convolutions as LCM-LoRA has (loras/sd1-kohya-locon.safetensors, from make_lora_fixtures.py;
  random, so it shows the path composes, not LCM's quality).
Each case is a diffusers StableDiffusionPipeline run (Euler unless named), prompt given as token ids, final latents.
Output: Tests/StableDiffusionTests/Fixtures/few_step.json (a few KB).
"""
import json
import pathlib

import torch
from diffusers import StableDiffusionPipeline

import tomesd
from DeepCache import DeepCacheSDHelper

here = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
from fixture_samplers import SAMPLERS  # noqa: E402  (Tools/, next to this script)
from fixture_support import encode, load_parts, prompt_ids, sd_pipeline  # noqa: E402

torch.set_num_threads(1)
folder = here / "models" / "tiny-sd1"
text, unet, vae = load_parts(folder)
ids, negative_ids = prompt_ids(torch.Generator().manual_seed(7))
embeds, negative = encode(text, ids, negative_ids)


def run(sampler, steps, guidance, seed=42, batch=1, tome=None, deepcache=None, lora=None):
    """One text-to-image run's final latents, with token merging `tome` (ratio), DeepCache (interval, branch) or the
    LoRA file `lora` (weight 1)."""
    pipe = sd_pipeline(StableDiffusionPipeline, SAMPLERS, sampler, folder, text, unet, vae)
    if lora is not None:
        pipe.load_lora_weights(str(here / "loras" / f"{lora}.safetensors"), adapter_name="lcm")
    helper = None
    if tome is not None:
        # tomesd's block forward predates diffusers' norm_type: these blocks use a plain LayerNorm.
        for module in pipe.unet.modules():
            if type(module).__name__ == "BasicTransformerBlock":
                module.use_ada_layer_norm = module.use_ada_layer_norm_zero = False
        tomesd.apply_patch(pipe, ratio=tome, use_rand=False)
    if deepcache is not None:
        helper = DeepCacheSDHelper(pipe=pipe)
        helper.set_params(cache_interval=deepcache[0], cache_branch_id=deepcache[1])
        helper.enable()
    with torch.no_grad():
        latents = pipe(prompt_embeds=embeds.repeat(batch, 1, 1), negative_prompt_embeds=negative.repeat(batch, 1, 1),
                       width=24, height=16, num_inference_steps=steps, guidance_scale=guidance,
                       generator=[torch.Generator().manual_seed(seed + i) for i in range(batch)],
                       output_type="latent").images
    if tome is not None:
        tomesd.remove_patch(pipe)
    if helper is not None:
        helper.disable()
    if lora is not None:
        pipe.unload_lora_weights()
    return latents


cases = []
for name, sampler, steps, guidance, batch, tome, deepcache, *lora in [
    ("full", "euler", 6, 7.5, 1, None, None),
    ("tome 0.5", "euler", 6, 7.5, 1, 0.5, None),
    ("tome 0.3 batch 2", "euler", 6, 7.5, 2, 0.3, None),
    ("deepcache 3 branch 0", "euler", 6, 7.5, 1, None, (3, 0)),
    ("deepcache 2 branch 1", "euler", 6, 7.5, 1, None, (2, 1)),
    ("deepcache 3 branch 4", "euler", 6, 7.5, 2, None, (3, 4)),
    ("lcm 4 steps guidance 1", "lcm", 4, 1.0, 1, None, None),
    ("lcm lora 4 steps guidance 1", "lcm", 4, 1.0, 1, None, None, "sd1-kohya-locon"),
]:
    lora = lora[0] if lora else None
    latents = run(sampler, steps, guidance, batch=batch, tome=tome, deepcache=deepcache, lora=lora)
    cases.append({"name": name, "sampler": sampler, "tome": tome, "deepcache": list(deepcache) if deepcache else None,
                  "lora": lora,
                  "settings": {"width": 24, "height": 16, "steps": steps, "guidance": guidance, "seed": 42, "batch": batch},
                  "ids": ids[0].tolist(), "negative_ids": negative_ids[0].tolist(),
                  "latents_shape": list(latents.shape), "latents": [round(v, 7) for v in latents.flatten().tolist()]})
    print(name, latents.abs().mean().item())
full = torch.tensor(cases[0]["latents"])
for case in cases[1:]:
    if case["settings"]["batch"] == 1 and case["sampler"] == "euler":
        print(case["name"], "differs from full by", (torch.tensor(case["latents"]) - full).abs().max().item())
(here / "few_step.json").write_text(json.dumps({"cases": cases}))
