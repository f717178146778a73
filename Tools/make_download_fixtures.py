#!/usr/bin/env python3
"""Writes single-file checkpoints laid out as real downloads are, from the tiny fixture models.

A dev tool (pip install torch safetensors), never needed by the test command; run it after
Tools/make_model_fixtures.py. Its output is committed under Tests/StableDiffusionTests/Fixtures/models/.

The SD 1.x files people download (v1-5-pruned, sd-v1-4 and the models merged from them) hold more
than the three networks: an EMA copy of the UNet (`model_ema.*`, with `decay` and an integer
`num_updates`), the training scheduler's buffers (`betas`, `alphas_cumprod`, `sqrt_*`, `posterior_*`,
...), `logvar`, the VAE's training loss (`first_stage_model.loss.*`, with BatchNorm's int64
`num_batches_tracked`) and CLIP's int64 `position_ids`. The .ckpt form is a Lightning checkpoint
(`epoch`, `global_step`, `pytorch-lightning_version`, `state_dict`, `callbacks`, ...).

- tiny-sd1-download.safetensors / .ckpt   tiny-sd1's weights plus every extra key above
- tiny-sd2-download.safetensors / .ckpt   the same for the SD 2.x-shaped model
  (each with a copy of its model's sidecar `.config.json`)
- dtypes.safetensors                      one small tensor of every integer and bool dtype,
                                          with the values the test expects in dtypes.json
"""
import json
import pathlib
import shutil

import torch
from safetensors.torch import load_file, save_file

root = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures" / "models"


def schedule_buffers():
    """The DDPM buffers LDM's LatentDiffusion registers (linear-in-sqrt betas, 1000 steps)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    posterior_variance = betas * (1 - previous) / (1 - alphas_cumprod)
    buffers = {
        "betas": betas, "alphas_cumprod": alphas_cumprod, "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(), "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - alphas_cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1 / alphas_cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * previous.sqrt() / (1 - alphas_cumprod),
        "posterior_mean_coef2": (1 - previous) * (1 - betas).sqrt() / (1 - alphas_cumprod),
    }
    result = {name: value.float() for name, value in buffers.items()}
    result["logvar"] = torch.zeros(1000)
    return result


def extras(ldm, sd2):
    generator = torch.Generator().manual_seed(77 if sd2 else 76)
    out = {}
    # LitEma stores each UNet parameter under its name without dots.
    for key, value in ldm.items():
        if key.startswith("model.diffusion_model."):
            name = "model_ema." + key[len("model."):].replace(".", "")
            out[name] = value + 0.01 * torch.randn(value.shape, generator=generator)
    out["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
    out["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
    out.update(schedule_buffers())
    # The VAE's training loss: a scalar, LPIPS-style convolutions and a discriminator with BatchNorm.
    out["first_stage_model.loss.logvar"] = torch.tensor(0.0)
    out["first_stage_model.loss.perceptual_loss.scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
    out["first_stage_model.loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(4, 3, 3, 3, generator=generator)
    out["first_stage_model.loss.discriminator.main.0.weight"] = torch.randn(4, 3, 4, 4, generator=generator)
    out["first_stage_model.loss.discriminator.main.3.running_mean"] = torch.zeros(4)
    out["first_stage_model.loss.discriminator.main.3.running_var"] = torch.ones(4)
    out["first_stage_model.loss.discriminator.main.3.num_batches_tracked"] = torch.tensor(1234, dtype=torch.int64)
    if sd2:
        # OpenCLIP's extra parameters that SD 2.x files carry and the engine does not use.
        width = ldm["cond_stage_model.model.token_embedding.weight"].shape[1]
        out["cond_stage_model.model.text_projection"] = torch.randn(width, width, generator=generator)
        out["cond_stage_model.model.logit_scale"] = torch.tensor(4.6052)
        out["cond_stage_model.model.attn_mask"] = torch.full((77, 77), float("-inf")).triu(1)
    else:
        out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64).reshape(1, 77)
    return out


def write(name, sd2):
    ldm = load_file(str(root / f"{name}.safetensors"))
    full = {**ldm, **extras(ldm, sd2)}
    full = {key: value.contiguous() for key, value in full.items()}
    stem = f"{name}-download"
    save_file(full, str(root / f"{stem}.safetensors"), metadata={"format": "pt"})
    torch.save({"epoch": 6, "global_step": 470000, "pytorch-lightning_version": "1.4.2", "state_dict": full,
                "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}, root / f"{stem}.ckpt")
    shutil.copy(root / f"{name}.config.json", root / f"{stem}.config.json")
    return len(full) - len(ldm)


def dtypes():
    values = [0, 1, -2, 3, 100, -100, 7]
    tensors = {
        "i8": torch.tensor(values, dtype=torch.int8), "i16": torch.tensor([v * 300 for v in values], dtype=torch.int16),
        "i32": torch.tensor([v * 70000 for v in values], dtype=torch.int32),
        "i64": torch.tensor([v * 3_000_000 for v in values], dtype=torch.int64).reshape(7, 1),
        "u8": torch.tensor([abs(v) + 150 for v in values], dtype=torch.uint8),
        "bool": torch.tensor([v > 0 for v in values], dtype=torch.bool),
        "f64": torch.tensor([v / 8 for v in values], dtype=torch.float64),
    }
    save_file(tensors, str(root / "dtypes.safetensors"))
    expected = {name: {"shape": list(t.shape), "values": [float(x) for x in t.flatten().tolist()],
                       "dtype": str(t.dtype)} for name, t in tensors.items()}
    (root / "dtypes.json").write_text(json.dumps(expected, indent=1))


for name, sd2 in (("tiny-sd1", False), ("tiny-sd2", True)):
    print(name, write(name, sd2), "extra tensors")
dtypes()
