#!/usr/bin/env python3
"""Writes the tiny SDXL base and refiner as single files in the SGM layout that SDXL downloads use.

A dev tool (pip install torch diffusers transformers safetensors), never needed by the test command; run it after
Tools/make_sdxl_fixtures.py, whose committed folders it reads. Its output is committed under
Tests/StableDiffusionTests/Fixtures/models/:

- tiny-sdxl.safetensors          tiny-sdxl/ as one file: `conditioner.embedders.0.transformer.*` (the CLIP-L-like
                                 encoder in transformers' names), `conditioner.embedders.1.model.*` (the bigG-like
                                 encoder in OpenCLIP's: fused q/k/v, `text_projection` as a [width, projection]
                                 matrix used as x @ P), `model.diffusion_model.*` (with `label_emb.0.0`/`.0.2`, the
                                 added embedding), `first_stage_model.*`; plus what real files carry and the engine
                                 does not read (CLIP's int64 `position_ids`, OpenCLIP's `logit_scale`)
- tiny-sdxl-refiner.safetensors  tiny-sdxl-refiner/ the same way; its one encoder is `conditioner.embedders.0.model.*`
- <name>.config.json             what the weights cannot show: head counts, group-norm groups

The export is our own mapping (diffusers -> SGM); the script proves it right by running diffusers' own single-file
converters on the export and requiring every tensor of the folder to come back unchanged.
"""
import json
import pathlib

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from make_model_fixtures import open_clip_tower, same, unet_to_ldm, vae_to_ldm  # Tools/, next to this script

root = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures" / "models"
CLIP_L = "conditioner.embedders.0.transformer."
ADDED = {"add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2."}


def text_weights(folder):
    """A text encoder folder's weights with transformers' `text_model.` names, and its config."""
    weights = load_file(str(folder / "model.safetensors"))
    return weights, json.loads((folder / "config.json").read_text())


def unet_to_sgm(sd, levels):
    """diffusers UNet names -> SGM `model.diffusion_model.*`: the LDM names plus the added (text_time) embedding."""
    added = {k: v for k, v in sd.items() if k.startswith("add_embedding.")}
    out = unet_to_ldm({k: v for k, v in sd.items() if k not in added}, 2, levels)
    for k, v in added.items():
        prefix = next(p for p in ADDED if k.startswith(p))
        out["model.diffusion_model." + ADDED[prefix] + k[len(prefix):]] = v
    return out


def big_g_to_sgm(sd, prefix, layers):
    """CLIPTextModelWithProjection names -> OpenCLIP under `prefix`, every layer kept (SDXL pools from the last one);
    OpenCLIP applies its projection as x @ P, so P is the transpose of transformers' `text_projection.weight`."""
    out = open_clip_tower(sd, prefix, layers)
    out[prefix + "text_projection"] = sd["text_projection.weight"].T.contiguous()
    out[prefix + "logit_scale"] = torch.tensor(4.6052)
    return out


def export(name, refiner):
    folder = root / name
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    u, v = unet.state_dict(), vae.state_dict()
    levels = len(unet.config.block_out_channels)
    big_g, big_g_config = text_weights(folder / "text_encoder_2")
    big_g_prefix = f"conditioner.embedders.{0 if refiner else 1}.model."
    sgm = {**unet_to_sgm(u, levels), **vae_to_ldm(v, len(vae.config.block_out_channels))}
    sgm.update(big_g_to_sgm(big_g, big_g_prefix, big_g_config["num_hidden_layers"]))
    sidecar = {"attention_head_dim": unet.config.attention_head_dim, "norm_num_groups": unet.config.norm_num_groups,
               "vae_norm_num_groups": vae.config.norm_num_groups,
               "text_encoder_2_num_attention_heads": big_g_config["num_attention_heads"]}
    if not refiner:
        clip, clip_config = text_weights(folder / "text_encoder")
        sgm.update({CLIP_L + k: x for k, x in clip.items()})
        sgm[CLIP_L + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
        sidecar["text_encoder_num_attention_heads"] = clip_config["num_attention_heads"]
    sgm = {k: x.contiguous() for k, x in sgm.items()}

    # Proof: diffusers' own converters turn the export back into the folder's tensors.
    same(u, sfu.convert_ldm_unet_checkpoint(sgm, unet.config), f"{name} unet")
    same(v, sfu.convert_ldm_vae_checkpoint(sgm, vae.config), f"{name} vae")
    model = CLIPTextModelWithProjection(CLIPTextConfig(**big_g_config))
    same(big_g, sfu.convert_open_clip_checkpoint(model, sgm, prefix=big_g_prefix), f"{name} text encoder 2")
    if not refiner:
        same(clip, sfu.convert_ldm_clip_checkpoint(sgm), f"{name} text encoder")
    # ...and recognise the layout as diffusers does: CLIP-L and bigG of the base, the refiner's lone bigG.
    assert sfu.is_clip_sdxl_model(sgm) != refiner and sfu.is_open_clip_sdxl_model(sgm) != refiner
    assert sfu.is_open_clip_sdxl_refiner_model(sgm) == refiner

    save_file(sgm, str(root / f"{name}.safetensors"), metadata={"format": "pt"})
    (root / f"{name}.config.json").write_text(json.dumps(sidecar, indent=1))
    for path in (root / f"{name}.safetensors", root / f"{name}.config.json"):
        path.chmod(0o644)
    return len(sgm)


if __name__ == "__main__":
    for name, refiner in (("tiny-sdxl", False), ("tiny-sdxl-refiner", True)):
        print(name, export(name, refiner), "SGM tensors")
