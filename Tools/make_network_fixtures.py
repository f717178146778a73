#!/usr/bin/env python3
"""Writes diffusers/transformers outputs of the tiny fixture models for the network parity tests.

A dev tool (pip install torch diffusers transformers safetensors); run it after
Tools/make_model_fixtures.py. Output: Tests/StableDiffusionTests/Fixtures/networks.{json,bin}.
"""
import json
import pathlib

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import CLIPTextModel

from fixture_support import TensorBlob  # Tools/, next to this script

here = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
models = here / "models"
cases, blob = [], TensorBlob()
put = blob.put


def case(name, params, inputs, outputs):
    cases.append({"name": name, "params": params, "inputs": {k: put(v) for k, v in inputs.items()},
                  "outputs": {k: put(v) for k, v in outputs.items()}})


torch.manual_seed(7)
with torch.no_grad():
    for model in ("tiny-sd1", "tiny-sd2"):
        folder = models / model
        text = CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
        ids = torch.randint(0, 1000, (2, 77))
        out = text(ids, output_hidden_states=True)
        penultimate = text.text_model.final_layer_norm(out.hidden_states[-2])
        case(f"{model}/text_encoder", {"model": model}, {"ids": ids.float()},
             {"last": out.last_hidden_state, "penultimate": penultimate})

        # Prompt weights the A1111 way (sd_hijack_clip.process_tokens): scale each token's
        # hidden state by its weight, then restore the chunk's original mean; two chunks concatenated.
        weights = torch.ones(2, 77)
        weights[0, 3:7] = 1.21
        weights[1, 10:12] = 0.909
        chunks = []
        for row in range(2):
            z = text(ids[row:row + 1]).last_hidden_state
            original_mean = z.mean()
            z = z * weights[row].reshape(1, 77, 1)
            chunks.append(z * (original_mean / z.mean()))
        case(f"{model}/text_encoder_weighted", {"model": model}, {"ids": ids.float(), "weights": weights},
             {"weighted": torch.cat(chunks, dim=1)})

        unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
        context_width = unet.config.cross_attention_dim
        sample = torch.randn(2, 4, 8, 8)
        context = torch.randn(2, 77, context_width)
        for t in (999, 500, 1):
            case(f"{model}/unet_t{t}", {"model": model, "timestep": t}, {"sample": sample, "context": context},
                 {"noise": unet(sample, t, context).sample})

        vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
        latents = torch.randn(1, 4, 8, 8)
        image = torch.rand(1, 3, 16, 16) * 2 - 1
        posterior = vae.encode(image).latent_dist
        case(f"{model}/vae", {"model": model}, {"latents": latents, "image": image},
             {"decoded": vae.decode(latents).sample, "mean": posterior.mean, "logvar": posterior.logvar})

        if model == "tiny-sd1":
            # diffusers' tiled decode (tiles of sample_size / 2^(levels-1) = 8 latents, 25 % overlap)
            # of a latent 4x the tile size, and the untiled decode of the same latent.
            big = torch.randn(1, 4, 32, 32)
            vae.enable_tiling()
            tiled = vae.decode(big).sample
            vae.disable_tiling()
            case("tiny-sd1/vae_tiled", {"model": model, "tile": vae.tile_latent_min_size}, {"latents": big},
                 {"tiled": tiled, "untiled": vae.decode(big).sample})
            # Tiled encode of an image 4x the sample tile (16 px tiles, 25 % overlap).
            picture = torch.rand(1, 3, 64, 48) * 2 - 1
            vae.enable_tiling()
            posterior = vae.encode(picture).latent_dist
            vae.disable_tiling()
            case("tiny-sd1/vae_tiled_encode", {"model": model, "tile": vae.tile_sample_min_size}, {"image": picture},
                 {"mean": posterior.mean, "logvar": posterior.logvar})

            # An inpainting UNet: 9 input channels (latents, mask, masked-image latents).
            # Own seeds for the extra models, so that adding a case above does not change them.
            torch.manual_seed(90)
            inpaint = UNet2DConditionModel.from_config({**unet.config, "in_channels": 9})
            for p in inpaint.parameters():
                p.data.copy_(torch.randn_like(p) * 0.2)
            inpaint.save_pretrained(models / "tiny-inpaint-unet")
            sample9 = torch.randn(2, 9, 8, 8)
            case("tiny-sd1/unet_inpaint", {"model": model, "timestep": 321},
                 {"sample": sample9, "context": context}, {"noise": inpaint(sample9, 321, context).sample})

            # One stride-2 stage in the conditioning embedding: the tiny VAE downsamples by 2, not 8.
            torch.manual_seed(91)
            controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8))
            for p in controlnet.parameters():
                p.data.copy_(torch.randn_like(p) * 0.2)
            controlnet.save_pretrained(models / "tiny-controlnet")
            control = torch.rand(2, 3, 16, 16)
            down, mid = controlnet(sample, 500, context, controlnet_cond=control, conditioning_scale=0.8,
                                   return_dict=False)
            outputs = {f"down{i}": d for i, d in enumerate(down)}
            outputs["mid"] = mid
            outputs["noise"] = unet(sample, 500, context, down_block_additional_residuals=down,
                                    mid_block_additional_residual=mid).sample
            case("tiny-sd1/controlnet", {"model": model, "timestep": 500, "scale": 0.8},
                 {"sample": sample, "context": context, "control": control}, outputs)

(here / "networks.bin").write_bytes(bytes(blob.data))
(here / "networks.json").write_text(json.dumps({"cases": cases}, indent=1))
print(len(cases), "cases,", len(blob), "bytes")
