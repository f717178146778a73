#!/usr/bin/env python3
"""Writes tiny random-weight Stable Diffusion models in every checkpoint form.

A dev tool (pip install torch diffusers transformers safetensors), never needed by
the test command: its output is committed under Tests/StableDiffusionTests/Fixtures/models/.

- tiny-sd1/            a diffusers folder (save_pretrained, safetensors; the VAE also as an fp16 variant)
- tiny-sd1.safetensors the same weights as one CompVis/LDM single file
- tiny-sd1.ckpt        the same LDM state dict as a PyTorch pickle checkpoint
- tiny-sd2/, tiny-sd2.safetensors (+ .config.json)
                       an SD 2.x-shaped model: OpenCLIP text tower with fused in_proj,
                       linear transformer projections, per-block head counts, v-prediction

The LDM export below is our own mapping (diffusers -> LDM); the script proves it right
by running diffusers' own single-file converters on the export and requiring every
tensor to come back unchanged.
"""
import copy
import json
import pathlib
import shutil

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

root = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures" / "models"


def unet_to_ldm(sd, layers_per_block, levels):
    """diffusers UNet2DConditionModel names -> LDM `model.diffusion_model.*` names."""
    out = {}
    resnet = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}

    def res(prefix_from, prefix_to, rest):
        head, _, tail = rest.partition(".")
        return f"{prefix_to}.{resnet[head]}.{tail}"

    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("time_embedding.linear_1"):
            n = k.replace("time_embedding.linear_1", "time_embed.0")
        elif k.startswith("time_embedding.linear_2"):
            n = k.replace("time_embedding.linear_2", "time_embed.2")
        elif k.startswith("conv_in"):
            n = k.replace("conv_in", "input_blocks.0.0")
        elif k.startswith("conv_norm_out"):
            n = k.replace("conv_norm_out", "out.0")
        elif k.startswith("conv_out"):
            n = k.replace("conv_out", "out.2")
        elif k.startswith("down_blocks"):
            b, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                n = res(None, f"input_blocks.{1 + b * (layers_per_block + 1) + j}.0", rest)
            elif kind == "attentions":
                n = f"input_blocks.{1 + b * (layers_per_block + 1) + j}.1.{rest}"
            else:  # downsamplers.0.conv
                n = f"input_blocks.{1 + b * (layers_per_block + 1) + layers_per_block}.0.op.{'.'.join(parts[5:])}"
        elif k.startswith("mid_block"):
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if kind == "resnets":
                n = res(None, f"middle_block.{0 if j == 0 else 2}", rest)
            else:
                n = f"middle_block.1.{rest}"
        elif k.startswith("up_blocks"):
            b, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                n = res(None, f"output_blocks.{b * (layers_per_block + 1) + j}.0", rest)
            elif kind == "attentions":
                n = f"output_blocks.{b * (layers_per_block + 1) + j}.1.{rest}"
            else:  # upsamplers.0.conv: after the last resnet (and its attention, if any)
                index = b * (layers_per_block + 1) + layers_per_block
                has_attention = any(x.startswith(f"up_blocks.{b}.attentions.") for x in sd)
                n = f"output_blocks.{index}.{2 if has_attention else 1}.{'.'.join(parts[4:])}"
        else:
            raise KeyError(k)
        out["model.diffusion_model." + n] = v
    return out


def vae_to_ldm(sd, levels):
    """diffusers AutoencoderKL names -> LDM `first_stage_model.*` names."""
    out = {}
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for k, v in sd.items():
        n = k
        for side, blocks, new in (("encoder", "down_blocks", "down"), ("decoder", "up_blocks", "up")):
            if k.startswith(f"{side}.{blocks}."):
                parts = k.split(".")
                b = int(parts[2])
                if side == "decoder":
                    b = levels - 1 - b
                if parts[3] == "resnets":
                    n = f"{side}.{new}.{b}.block.{parts[4]}." + ".".join(parts[5:])
                else:  # downsamplers.0.conv / upsamplers.0.conv
                    n = f"{side}.{new}.{b}.{'downsample' if side == 'encoder' else 'upsample'}." + ".".join(parts[5:])
        n = n.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        for side in ("encoder", "decoder"):
            if n.startswith(f"{side}.mid_block.resnets."):
                j = int(n.split(".")[3])
                n = f"{side}.mid.block_{j + 1}." + ".".join(n.split(".")[4:])
            elif n.startswith(f"{side}.mid_block.attentions.0."):
                rest = n[len(f"{side}.mid_block.attentions.0."):]
                for a, b in attention.items():
                    if rest.startswith(a + "."):
                        rest = b + rest[len(a):]
                        break
                n = f"{side}.mid.attn_1.{rest}"
                if v.dim() == 2:  # LDM stores the VAE attention projections as 1x1 convolutions
                    v = v[:, :, None, None]
        out["first_stage_model." + n] = v
    return out


def clip_to_ldm(sd):
    return {"cond_stage_model.transformer." + k: v for k, v in sd.items()}


def open_clip_tower(sd, p, layers):
    """transformers CLIPTextModel names (`text_model.` prefix) -> OpenCLIP's text tower under prefix `p`: embeddings,
    final norm and `layers` residual blocks with q/k/v fused into `attn.in_proj_*` (no projection, no logit scale)."""
    out = {p + "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           p + "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           p + "ln_final.weight": sd["text_model.final_layer_norm.weight"],
           p + "ln_final.bias": sd["text_model.final_layer_norm.bias"]}
    for i in range(layers):
        s, d = f"text_model.encoder.layers.{i}.", f"{p}transformer.resblocks.{i}."
        out[d + "ln_1.weight"], out[d + "ln_1.bias"] = sd[s + "layer_norm1.weight"], sd[s + "layer_norm1.bias"]
        out[d + "ln_2.weight"], out[d + "ln_2.bias"] = sd[s + "layer_norm2.weight"], sd[s + "layer_norm2.bias"]
        out[d + "attn.in_proj_weight"] = torch.cat([sd[s + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[d + "attn.in_proj_bias"] = torch.cat([sd[s + f"self_attn.{x}_proj.bias"] for x in "qkv"])
        out[d + "attn.out_proj.weight"], out[d + "attn.out_proj.bias"] = sd[s + "self_attn.out_proj.weight"], sd[s + "self_attn.out_proj.bias"]
        out[d + "mlp.c_fc.weight"], out[d + "mlp.c_fc.bias"] = sd[s + "mlp.fc1.weight"], sd[s + "mlp.fc1.bias"]
        out[d + "mlp.c_proj.weight"], out[d + "mlp.c_proj.bias"] = sd[s + "mlp.fc2.weight"], sd[s + "mlp.fc2.bias"]
    return out


def open_clip_to_ldm(sd, layers):
    """diffusers/transformers CLIPTextModel names -> OpenCLIP `cond_stage_model.model.*` (fused in_proj).

    Like SD 2.x's real files, the export has one more transformer layer than the
    diffusers text encoder: SD 2.x conditions on the penultimate layer, so diffusers
    drops the last one. That extra layer is random here."""
    p = "cond_stage_model.model."
    width = sd["text_model.final_layer_norm.weight"].shape[0]
    projection = torch.randn(width, width)
    last = f"text_model.encoder.layers.{layers - 1}."
    for k in [k for k in sd if k.startswith(last)]:
        sd[k.replace(last, f"text_model.encoder.layers.{layers}.")] = torch.randn_like(sd[k])
    out = open_clip_tower(sd, p, layers + 1)
    out[p + "text_projection"] = projection
    out[p + "logit_scale"] = torch.tensor(4.6052)
    return out


def same(a, b, what):
    # transformers 5 names CLIPTextModel weights without the `text_model.` prefix that
    # checkpoints in the wild (and diffusers' converters) use; compare without it.
    strip = lambda d: {k.removeprefix("text_model."): v for k, v in d.items() if "position_ids" not in k}
    a, b = strip(a), strip(b)
    assert a.keys() == b.keys(), f"{what}: keys differ: {sorted(set(a) ^ set(b))[:8]}"
    for k in a:
        assert torch.equal(a[k].float(), b[k].float().reshape(a[k].shape)), f"{what}: {k} differs"


def build(name, sd2):
    torch.manual_seed(2 if sd2 else 1)
    blocks = (8, 16, 16)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=blocks,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24 if sd2 else 16, norm_num_groups=4,
        attention_head_dim=(2, 4, 4) if sd2 else 2, use_linear_projection=sd2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, norm_num_groups=4, sample_size=16)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=24 if sd2 else 16, intermediate_size=48 if sd2 else 32,
        num_hidden_layers=3, num_attention_heads=2, max_position_embeddings=77,
        hidden_act="gelu" if sd2 else "quick_gelu", projection_dim=24 if sd2 else 16,
        pad_token_id=0 if sd2 else 1, bos_token_id=49406, eos_token_id=49407))
    # Random, not zero-initialised, weights everywhere (diffusers zero-inits some).
    for model in (unet, vae, text):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * 0.2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type="v_prediction" if sd2 else "epsilon")

    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    if not sd2:
        copy.deepcopy(vae).to(torch.float16).save_pretrained(folder / "vae", variant="fp16")
    text.save_pretrained(folder / "text_encoder")
    scheduler.save_pretrained(folder / "scheduler")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {"pad_token": "!" if sd2 else "<|endoftext|>", "model_max_length": 77}, indent=1))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "requires_safety_checker": False}, indent=1))

    u, v = unet.state_dict(), vae.state_dict()
    # Name the text encoder's weights as released checkpoints do (`text_model.` prefix).
    t = {(k if k.startswith("text_model.") else "text_model." + k): x.contiguous() for k, x in text.state_dict().items()}
    save_file(t, str(folder / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
    ldm = {**unet_to_ldm(u, 2, len(blocks)), **vae_to_ldm(v, 2)}
    ldm.update(open_clip_to_ldm(dict(t), 3) if sd2 else clip_to_ldm(t))
    ldm = {k: x.contiguous() for k, x in ldm.items()}

    # Proof: diffusers' own converters turn our export back into the original tensors.
    same(u, sfu.convert_ldm_unet_checkpoint(ldm, unet.config), f"{name} unet")
    same(v, sfu.convert_ldm_vae_checkpoint(ldm, vae.config), f"{name} vae")
    if sd2:
        converted = sfu.convert_open_clip_checkpoint(CLIPTextModel(text.config), ldm)
        # diffusers converts the extra last layer too; the model it builds has no place for it.
        extra = {k for k in converted if ".layers.3." in k}
        same(t, {k: v for k, v in converted.items() if k not in extra}, f"{name} text encoder")
    else:
        same(t, sfu.convert_ldm_clip_checkpoint(ldm), f"{name} text encoder")

    save_file(ldm, str(root / f"{name}.safetensors"), metadata={"format": "pt"})
    # What the weights cannot show (v-prediction, head counts, group-norm groups) rides
    # along in a config file next to the checkpoint.
    sidecar = {"attention_head_dim": [2, 4, 4] if sd2 else 2, "norm_num_groups": 4, "vae_norm_num_groups": 4,
               "text_encoder_num_attention_heads": 2}
    if sd2:
        sidecar["prediction_type"] = "v_prediction"
    (root / f"{name}.config.json").write_text(json.dumps(sidecar, indent=1))
    if not sd2:
        torch.save({"state_dict": ldm, "global_step": 470000}, root / f"{name}.ckpt")
    return len(ldm)


if __name__ == "__main__":
    root.mkdir(parents=True, exist_ok=True)
    for name, sd2 in (("tiny-sd1", False), ("tiny-sd2", True)):
        print(name, build(name, sd2), "LDM tensors")
