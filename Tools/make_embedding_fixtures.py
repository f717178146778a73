#!/usr/bin/env python3
"""Writes small textual-inversion embeddings for the tiny SD 1.x and SDXL models and runs diffusers with them, for the
embedding parity tests.

A dev tool (pip install torch diffusers transformers safetensors), never needed by the test command; run it after
Tools/make_model_fixtures.py and Tools/make_sdxl_fixtures.py. Its output is committed under
Tests/StableDiffusionTests/Fixtures/:

- embeddings/tiny-emb.pt                 the web UI's format (`string_to_param`/`*`, with `string_to_token`, `name`,
                                         `step`), 2 vectors of the tiny SD 1.x encoder's width 16
- embeddings/tiny-neg.safetensors        `emb_params`, 3 vectors
- embeddings/tiny-learned.safetensors    diffusers' `learned_embeds` (one tensor under its token, one vector)
- embeddings/tiny-xl-emb.safetensors     SDXL's pair: `clip_l` (32 wide) and `clip_g` (48 wide), 2 vectors
- embeddings.json                        per case: token rows where ids from 49408 on are the embeddings' vectors
                                         (in the order the case lists the embeddings), diffusers' final latents and
                                         pixels

diffusers' `load_textual_inversion` adds a token per vector after the tokenizer's vocabulary and writes the vectors into
the resized token-embedding table; the tiny models have no tokenizer, so this script does the same by hand: it resizes
each text encoder's table and puts the vectors in the new rows, then encodes the rows with the added ids.
"""
import json
import pathlib

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file

from fixture_samplers import SAMPLERS  # noqa: E402  (Tools/, next to this script)
from fixture_support import latents_and_pixels, load_parts, prompt_ids, sd_pipeline  # noqa: E402
import make_sdxl_fixtures as xl  # noqa: E402

fixtures = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
folder = fixtures / "embeddings"
FIRST = 49408  # the engine's first added id (CLIP's vocabulary size)
torch.set_num_threads(1)


def add_rows(encoder, rows):
    """Resizes `encoder`'s token table by `rows` [n, width] and writes them there; returns the first new id."""
    table = encoder.get_input_embeddings()
    first = table.weight.shape[0]
    encoder.resize_token_embeddings(first + rows.shape[0])
    with torch.no_grad():
        encoder.get_input_embeddings().weight[first:] = rows
    return first


def mapped(ids, first):
    """A token row with the engine's added ids (49408 + k) moved to where the resized table put them (first + k)."""
    return torch.tensor([[first + i - FIRST if i >= FIRST else i for i in ids]])


def sd1():
    g = torch.Generator().manual_seed(51)
    emb = torch.randn(2, 16, generator=g) * 0.5
    neg = torch.randn(3, 16, generator=g) * 0.5
    learned = torch.randn(16, generator=g) * 0.5
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": emb}, "name": "tiny-emb", "step": 500,
                "sd_checkpoint": None, "sd_checkpoint_name": None}, str(folder / "tiny-emb.pt"))
    save_file({"emb_params": neg}, str(folder / "tiny-neg.safetensors"))
    save_file({"<tiny-learned>": learned}, str(folder / "tiny-learned.safetensors"))

    model = fixtures / "models" / "tiny-sd1"
    ids, negative_ids = prompt_ids(torch.Generator().manual_seed(53))
    ids, negative_ids = ids[0].tolist(), negative_ids[0].tolist()
    # tiny-emb at 5–6 of the prompt and 9–10 of the negative prompt; tiny-neg at 20–22 of the negative prompt;
    # tiny-learned at 30 of the prompt.
    ids[5:7] = [FIRST, FIRST + 1]
    ids[30] = FIRST + 5
    negative_ids[9:11] = [FIRST, FIRST + 1]
    negative_ids[20:23] = [FIRST + 2, FIRST + 3, FIRST + 4]
    text, unet, vae = load_parts(model)
    first = add_rows(text, torch.cat([emb, neg, learned[None]]))
    pipe = sd_pipeline(StableDiffusionPipeline, SAMPLERS, "euler", model, text, unet, vae)
    with torch.no_grad():
        embeds = text(mapped(ids, first)).last_hidden_state
        negative = text(mapped(negative_ids, first)).last_hidden_state
    kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=negative, width=24, height=16, num_inference_steps=6,
                  guidance_scale=7.5)
    latents, pixels = latents_and_pixels(pipe, kwargs, [42])
    print("sd1", latents.abs().mean().item())
    return {"model": "tiny-sd1", "sampler": "euler", "embeddings": ["tiny-emb.pt", "tiny-neg.safetensors",
                                                                     "tiny-learned.safetensors"],
            "settings": {"width": 24, "height": 16, "steps": 6, "guidance": 7.5, "seed": 42},
            "ids": ids, "negative_ids": negative_ids, "latents_shape": list(latents.shape),
            "latents": latents.flatten().tolist(), "pixels": pixels}


def sdxl():
    g = torch.Generator().manual_seed(55)
    clip_l = torch.randn(2, 32, generator=g) * 0.5
    clip_g = torch.randn(2, 48, generator=g) * 0.5
    save_file({"clip_l": clip_l, "clip_g": clip_g}, str(folder / "tiny-xl-emb.safetensors"))
    gen = torch.Generator().manual_seed(57)
    positive, negative = xl.prompt(gen, 8), xl.prompt(gen, 6)
    for row in positive + negative:
        row[3:5] = [FIRST, FIRST + 1]
    text1, text2, unet, vae, _ = xl.load()
    first1, first2 = add_rows(text1, clip_l), add_rows(text2, clip_g)
    parts = dict(vae=vae, text_encoder=text1, text_encoder_2=text2, tokenizer=None, tokenizer_2=None, unet=unet)
    pipe = xl.pipe(StableDiffusionXLPipeline, "euler", **parts)
    embeds, pooled = xl.encode((text1, text2), [mapped(positive[0], first1)[0].tolist(),
                                                mapped(positive[1], first2)[0].tolist()])
    negative_embeds, negative_pooled = xl.encode((text1, text2), [mapped(negative[0], first1)[0].tolist(),
                                                                  mapped(negative[1], first2)[0].tolist()])
    kwargs = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=negative_embeds,
                  negative_pooled_prompt_embeds=negative_pooled, width=xl.WIDTH, height=xl.HEIGHT,
                  num_inference_steps=5, guidance_scale=6.0)
    latents, pixels = xl.run(pipe, kwargs, [12])
    print("sdxl", latents.abs().mean().item())
    return {"model": "tiny-sdxl", "sampler": "euler", "embeddings": ["tiny-xl-emb.safetensors"],
            "settings": {"width": xl.WIDTH, "height": xl.HEIGHT, "steps": 5, "guidance": 6.0, "seed": 12},
            "ids": positive[0], "ids_2": positive[1], "negative_ids": negative[0], "negative_ids_2": negative[1],
            "latents_shape": list(latents.shape), "latents": latents.flatten().tolist(), "pixels": pixels}


def main():
    folder.mkdir(parents=True, exist_ok=True)
    cases = [sd1(), sdxl()]
    for path in folder.iterdir():
        path.chmod(0o644)
    (fixtures / "embeddings.json").write_text(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()
