#!/usr/bin/env python3
"""Writes the tiny TAESD and upscaler models and their reference outputs for the finishing parity tests.

A dev tool (pip install torch diffusers safetensors spandrel). TAESD is diffusers' `AutoencoderTiny`; the upscalers
are run by spandrel, loading the very files this script saves, so the key layouts and the architecture detection
are spandrel's. Output: Tests/StableDiffusionTests/Fixtures/finishing.{json,bin} and Fixtures/models/tiny-taesd* (4x, its single files, and a 2x one for tiny-sd1),
Fixtures/models/upscalers/.
"""
import json
import pathlib
import re

import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN

from fixture_support import TensorBlob  # Tools/, next to this script

here = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
models = here / "models"
cases, blob = [], TensorBlob()
put = blob.put


def case(name, params, inputs, outputs):
    cases.append({"name": name, "params": params, "inputs": {k: put(v) for k, v in inputs.items()},
                  "outputs": {k: put(v) for k, v in outputs.items()}})


def randomize(module, scale):
    """Every parameter drawn again as N(0, scale²), so that no layer is left at a trivial default (PReLU's 0.25)."""
    for p in module.parameters():
        p.data.copy_(torch.randn_like(p) * scale)


with torch.no_grad():
    # TAESD: three levels of 8 channels (a 4x autoencoder), AutoencoderTiny's own layout otherwise.
    torch.manual_seed(29)
    taesd = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8),
                            num_encoder_blocks=(1, 2, 2), num_decoder_blocks=(2, 2, 1)).eval()
    randomize(taesd, 0.12)
    taesd.save_pretrained(models / "tiny-taesd", safe_serialization=True)
    # The single-file form (madebyollin/taesd's taesd_encoder/decoder): the encoder's layers keep their indices,
    # the decoder's move up by one behind its leading Clamp.
    state = taesd.state_dict()
    single = models / "tiny-taesd-single"
    single.mkdir(parents=True, exist_ok=True)
    save_file({k[len("encoder.layers."):]: v.contiguous() for k, v in state.items() if k.startswith("encoder.")},
              single / "taesd_encoder.safetensors")
    decoder = {}
    for k, v in state.items():
        if k.startswith("decoder.layers."):
            index, rest = k[len("decoder.layers."):].split(".", 1)
            decoder[f"{int(index) + 1}.{rest}"] = v.contiguous()
    save_file(decoder, single / "taesd_decoder.safetensors")
    latents = torch.randn(1, 4, 8, 8) * 2
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    case("taesd", {"model": "tiny-taesd"}, {"latents": latents, "image": image},
         {"decoded": taesd.decode(latents).sample, "encoded": taesd.encode(image).latents})

    # Upscalers, saved in the layouts found in the wild, then loaded back and run by spandrel.
    folder = models / "upscalers"
    folder.mkdir(parents=True, exist_ok=True)

    # spandrel fixes the RRDB growth channels at 32, so the RRDB files are one block stored as float16 (as many
    # downloads are), which keeps them small; spandrel widens them to float32 as it loads them.
    # ESRGAN x4, old-arch keys (model.0 ..., model.1.sub.N.RDBk.convj.0 ...), as .safetensors.
    torch.manual_seed(30)
    x4 = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    randomize(x4, 0.05)
    save_file({k: v.half().contiguous() for k, v in x4.state_dict().items()}, folder / "rrdb-x4.safetensors")

    # Real-ESRGAN x2 (RealESRGAN_x2plus): new-arch keys under params_ema, pixel-unshuffled 12-channel input, .pth.
    torch.manual_seed(31)
    x2 = ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)
    randomize(x2, 0.05)
    renamed = {}
    for k, v in x2.state_dict().items():
        rules = [(r"model\.0\.", "conv_first."), (r"model\.1\.sub\.1\.", "conv_body."),
                 (r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
                 (r"model\.3\.", "conv_up1."), (r"model\.6\.", "conv_up2."), (r"model\.8\.", "conv_hr."),
                 (r"model\.10\.", "conv_last.")]
        for pattern, replacement in rules:
            if re.match(pattern, k):
                k = re.sub(pattern, replacement, k, count=1)
                break
        else:
            raise SystemExit(f"no new-arch name for {k}")
        renamed[k] = v.half()
    torch.save({"params_ema": renamed}, folder / "rrdb-x2.pth")

    # Real-ESRGAN SRVGGNetCompact x4 with PReLU, plain state dict, .pth.
    torch.manual_seed(32)
    compact = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=4)
    randomize(compact, 0.1)
    torch.save(compact.state_dict(), folder / "compact-x4.pth")

    torch.manual_seed(33)
    for file, size in (("rrdb-x4.safetensors", (12, 10)), ("rrdb-x2.pth", (11, 13)), ("compact-x4.pth", (12, 10))):
        descriptor = ModelLoader().load_from_file(folder / file)
        descriptor.model.eval()
        picture = torch.rand(1, 3, *size)
        case(f"upscale/{file}", {"model": file, "scale": descriptor.scale, "architecture": descriptor.architecture.id},
             {"image": picture}, {"upscaled": descriptor.model(picture)})

    # A 2x TAESD (two levels) that fits tiny-sd1's 2x VAE, for `farm render --vae taesd` end to end; no reference
    # output (the 4x one's parity covers the network), so its own seed leaves the cases above unchanged.
    torch.manual_seed(34)
    taesd2 = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                             num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1)).eval()
    randomize(taesd2, 0.12)
    taesd2.save_pretrained(models / "tiny-taesd-2x", safe_serialization=True)

(here / "finishing.bin").write_bytes(bytes(blob.data))
(here / "finishing.json").write_text(json.dumps({"cases": cases}, indent=1))
print(len(cases), "cases,", len(blob), "bytes")
