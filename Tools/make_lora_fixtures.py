#!/usr/bin/env python3
"""Writes small LoRA files for the tiny SD 1.x and SDXL models and runs diffusers with them loaded, for the LoRA
parity tests.

A dev tool (pip install torch diffusers transformers peft safetensors), never needed by the test command; run it after
Tools/make_model_fixtures.py and Tools/make_sdxl_fixtures.py, whose committed folders it reads. Its output is committed
under Tests/StableDiffusionTests/Fixtures/:

- loras/sd1-kohya-locon.safetensors  kohya/web-UI names (`lora_unet_*` the diffusers way, `lora_te_*`): every
                                     attention and feed-forward linear, the 1×1 proj_in/proj_out convolutions, and
                                     LoCon layers on the resnets' 3×3 convolutions, time projections, shortcuts and
                                     the down/upsamplers; rank 4, alpha 2 (scale 0.5); the text encoder's attention
                                     and MLP linears
- loras/sd1-peft.safetensors         diffusers/PEFT names (`unet.….lora_A.weight`, `text_encoder.text_model.…`),
                                     rank 2, no alpha (scale 1), attention projections only
- loras/sdxl-kohya-sgm.safetensors   kohya names for SDXL: the UNet in SGM names (`input_blocks_4_1_…`,
                                     `middle_block_1_…`, `output_blocks_…`), both text encoders (`lora_te1_*`,
                                     `lora_te2_*`); rank 2, alpha 3 (scale 1.5), LoCon on resnets and downsamplers
- loras/sd1-loha.safetensors, loras/sd1-lokr.safetensors
                                     LyCORIS LoHa (`hada_w1_a`…) and LoKr (`lokr_w1`, `lokr_w2` whole or as
                                     `lokr_w2_a`/`lokr_w2_b`) on a few layers; lycoris.json holds the patched weights
                                     computed from the definitions (no diffusers loader reads these)
- lora.json                          per case: the LoRAs and weights, the token ids, diffusers' final latents and
                                     pixels (with the LoRAs loaded by `load_lora_weights` and weighted by
                                     `set_adapters`), the same run's latents without LoRAs, and how many layers
                                     diffusers injected per file

Prompts are token ids of the tiny vocabularies, encoded by the LoRA-patched text encoders and passed as embeddings.
transformers ≥ 5.6 drops the `text_model.` level that the text-encoder LoRA keys name: strip it before loading there.
"""
import json
import pathlib

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import load_file, save_file

from fixture_samplers import SAMPLERS  # noqa: E402  (Tools/, next to this script)
from fixture_support import encode, latents_and_pixels, load_parts, prompt_ids, sd_pipeline  # noqa: E402
from make_model_fixtures import unet_to_ldm  # noqa: E402
import make_sdxl_fixtures as xl  # noqa: E402

fixtures = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures"
loras = fixtures / "loras"
torch.set_num_threads(1)


def modules(model, kinds):
    """Names and modules of `model`'s Linear/Conv2d layers whose names end in one of `kinds`."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and any(n.endswith(k) for k in kinds)]


def pair(module, rank, g, scale=0.25):
    """A random LoRA down/up pair for one layer: a conv's down has its kernel, its up is 1×1."""
    if isinstance(module, torch.nn.Conv2d):
        down = torch.randn(rank, module.in_channels, *module.kernel_size, generator=g) * scale
        up = torch.randn(module.out_channels, rank, 1, 1, generator=g) * scale
    else:
        down = torch.randn(rank, module.in_features, generator=g) * scale
        up = torch.randn(module.out_features, rank, generator=g) * scale
    return down, up


def kohya(prefix, named, rank, alpha, g, rename=lambda n: n):
    """kohya/web-UI keys for `named` layers: `<prefix><name with _>.lora_down.weight`, `.lora_up.weight`, `.alpha`."""
    out = {}
    for name, module in named:
        down, up = pair(module, rank, g)
        key = prefix + rename(name).replace(".", "_")
        out[key + ".lora_down.weight"] = down
        out[key + ".lora_up.weight"] = up
        out[key + ".alpha"] = torch.tensor(float(alpha))
    return out


ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
TRANSFORMER = ATTENTION + ("ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
RESNET = ("conv1", "conv2", "time_emb_proj", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv")
TEXT = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def injected(pipe, adapter):
    """How many layers of each network carry the LoRA `adapter` after loading."""
    counts = {}
    for name in ("unet", "text_encoder", "text_encoder_2"):
        model = getattr(pipe, name, None)
        if model is not None:
            counts[name] = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_A") and adapter in m.lora_A)
    return counts


def flat(t):
    return t.flatten().tolist()


def sd1():
    folder = fixtures / "models" / "tiny-sd1"
    text, unet, vae = load_parts(folder)
    g = torch.Generator().manual_seed(31)
    files = {
        "sd1-kohya-locon": {**kohya("lora_unet_", modules(unet, TRANSFORMER + RESNET), 4, 2, g),
                            **kohya("lora_te_text_model_", modules(text.text_model, TEXT), 4, 2, g)},
        "sd1-peft": {},
    }
    for name, module in modules(unet, ATTENTION):
        down, up = pair(module, 2, g)
        files["sd1-peft"][f"unet.{name}.lora_A.weight"] = down
        files["sd1-peft"][f"unet.{name}.lora_B.weight"] = up
    for name, module in modules(text.text_model, ("q_proj", "v_proj")):
        down, up = pair(module, 2, g)
        files["sd1-peft"][f"text_encoder.text_model.{name}.lora_A.weight"] = down
        files["sd1-peft"][f"text_encoder.text_model.{name}.lora_B.weight"] = up
    for name, tensors in files.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(loras / f"{name}.safetensors"))

    ids, negative_ids = prompt_ids(torch.Generator().manual_seed(33))
    cases = []
    for sampler, applied in (("euler", [("sd1-kohya-locon", 0.8)]), ("euler", [("sd1-kohya-locon", -0.5)]),
                             ("dpmpp_2m", [("sd1-peft", 1.0)]), ("euler", [("sd1-kohya-locon", 0.8), ("sd1-peft", 0.6)])):
        text, unet, vae = load_parts(folder)
        pipe = sd_pipeline(StableDiffusionPipeline, SAMPLERS, sampler, folder, text, unet, vae)
        kwargs = dict(width=24, height=16, num_inference_steps=6, guidance_scale=7.5)
        embeds, negative = encode(text, ids, negative_ids)
        base, _ = latents_and_pixels(pipe, dict(kwargs, prompt_embeds=embeds, negative_prompt_embeds=negative), [42])
        counts = []
        for index, (name, _) in enumerate(applied):
            pipe.load_lora_weights(load_file(str(loras / f"{name}.safetensors")), adapter_name=f"a{index}")
            counts.append(injected(pipe, f"a{index}"))
        pipe.set_adapters([f"a{i}" for i in range(len(applied))], adapter_weights=[w for _, w in applied])
        embeds, negative = encode(text, ids, negative_ids)
        latents, pixels = latents_and_pixels(pipe, dict(kwargs, prompt_embeds=embeds, negative_prompt_embeds=negative),
                                             [42])
        cases.append({"model": "tiny-sd1", "sampler": sampler, "loras": [{"name": n, "weight": w} for n, w in applied],
                      "injected": counts, "settings": {"width": 24, "height": 16, "steps": 6, "guidance": 7.5,
                                                       "seed": 42},
                      "ids": ids[0].tolist(), "negative_ids": negative_ids[0].tolist(),
                      "latents_shape": list(latents.shape), "latents": flat(latents), "base_latents": flat(base),
                      "pixels": pixels})
        print("sd1", applied, counts, (latents - base).abs().max().item())
    return cases


def sdxl():
    text1, text2, unet, vae, _ = xl.load()
    g = torch.Generator().manual_seed(41)
    layers = len(unet.config.block_out_channels)

    def sgm(name):
        ldm = next(iter(unet_to_ldm({name + ".weight": None}, 2, layers)))
        return ldm[len("model.diffusion_model."):-len(".weight")]

    # Not the upsamplers (`output_blocks_N_2_conv`): diffusers' SGM mapping drops them.
    tensors = {**kohya("lora_unet_", modules(unet, TRANSFORMER + RESNET[:-1]), 2, 3, g, rename=sgm),
               **kohya("lora_te1_text_model_", modules(text1.text_model, TEXT), 2, 3, g),
               **kohya("lora_te2_text_model_", modules(text2.text_model, TEXT), 2, 3, g)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(loras / "sdxl-kohya-sgm.safetensors"))
    targets = len([k for k in tensors if k.endswith(".lora_down.weight")])

    gen = torch.Generator().manual_seed(43)
    positive, negative = xl.prompt(gen, 7), xl.prompt(gen, 4)
    cases = []
    for sampler, weight in (("euler", 0.7), ("dpmpp_2m", -0.4)):
        text1, text2, unet, vae, _ = xl.load()
        parts = dict(vae=vae, text_encoder=text1, text_encoder_2=text2, tokenizer=None, tokenizer_2=None, unet=unet)
        pipe = xl.pipe(StableDiffusionXLPipeline, sampler, **parts)
        kwargs = dict(width=xl.WIDTH, height=xl.HEIGHT, num_inference_steps=5, guidance_scale=6.0)

        def conditioning():
            embeds, pooled = xl.encode((text1, text2), positive)
            negative_embeds, negative_pooled = xl.encode((text1, text2), negative)
            return dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=negative_embeds,
                        negative_pooled_prompt_embeds=negative_pooled)

        base, _ = xl.run(pipe, dict(kwargs, **conditioning()), [11], latent_only=True)
        pipe.load_lora_weights(load_file(str(loras / "sdxl-kohya-sgm.safetensors")), adapter_name="x")
        counts = injected(pipe, "x")
        assert sum(counts.values()) == targets, (counts, targets)
        pipe.set_adapters(["x"], adapter_weights=[weight])
        latents, pixels = xl.run(pipe, dict(kwargs, **conditioning()), [11])
        cases.append({"model": "tiny-sdxl", "sampler": sampler, "loras": [{"name": "sdxl-kohya-sgm", "weight": weight}],
                      "injected": [counts], "settings": {"width": xl.WIDTH, "height": xl.HEIGHT, "steps": 5,
                                                         "guidance": 6.0, "seed": 11},
                      "ids": positive[0], "ids_2": positive[1], "negative_ids": negative[0],
                      "negative_ids_2": negative[1], "latents_shape": list(latents.shape), "latents": flat(latents),
                      "base_latents": flat(base), "pixels": pixels})
        print("sdxl", weight, counts, targets, (latents - base).abs().max().item())
    return cases


def main():
    loras.mkdir(parents=True, exist_ok=True)
    cases = sd1() + sdxl()
    lycoris()
    for path in loras.iterdir():
        path.chmod(0o644)
    (fixtures / "lora.json").write_text(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()


def lycoris():
    """LoHa and LoKr files on a few tiny SD 1.x layers (a 3×3 convolution, a 1×1 one, dense layers), and the patched
    weights computed from the LyCORIS/PEFT definitions: LoHa ΔW = (w1a·w1b) ⊙ (w2a·w2b), LoKr ΔW = w1 ⊗ w2 (a whole or
    a·b factor each), both times weight · alpha / rank (LoKr: rank of the factored w2; no alpha scaling for whole
    factors, as the web UI)."""
    folder = fixtures / "models" / "tiny-sd1"
    _, unet, _ = load_parts(folder)
    g = torch.Generator().manual_seed(61)
    layers = {n: m for n, m in unet.named_modules()}
    loha, lokr, expected = {}, {}, []
    for name, weight in (("down_blocks.0.resnets.0.conv1", 0.7), ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", -0.6),
                         ("mid_block.attentions.0.proj_in", 1.0)):
        w = layers[name].weight.detach()
        out, rest = w.shape[0], w[0].numel()
        r, alpha = 2, 3.0
        w1a, w1b = torch.randn(out, r, generator=g) * 0.3, torch.randn(r, rest, generator=g) * 0.3
        w2a, w2b = torch.randn(out, r, generator=g) * 0.3, torch.randn(r, rest, generator=g) * 0.3
        key = "lora_unet_" + name.replace(".", "_")
        loha.update({key + ".hada_w1_a": w1a, key + ".hada_w1_b": w1b, key + ".hada_w2_a": w2a, key + ".hada_w2_b": w2b,
                     key + ".alpha": torch.tensor(alpha)})
        delta = ((w1a @ w1b) * (w2a @ w2b)).reshape(w.shape) * alpha / r
        expected.append({"file": "sd1-loha", "weight": weight, "target": name, "shape": list(w.shape),
                         "values": flat(w + weight * delta)})
    for name, weight, factored in (("down_blocks.0.resnets.0.conv2", 0.8, True), ("up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2", 0.5, False)):
        w = layers[name].weight.detach()
        o, i = w.shape[0], w.shape[1]
        o1, i1 = 2, 4 if i % 4 == 0 else 2
        o2, i2 = o // o1, i // i1
        kernel = w.shape[2:] if w.ndim == 4 else ()
        w1 = torch.randn(o1, i1, generator=g) * 0.5
        key = "lora_unet_" + name.replace(".", "_")
        lokr[key + ".lokr_w1"] = w1
        if factored:
            r, alpha = 2, 1.0
            a, b = torch.randn(o2, r, generator=g) * 0.3, torch.randn(r, i2, *kernel, generator=g) * 0.3
            lokr.update({key + ".lokr_w2_a": a, key + ".lokr_w2_b": b, key + ".alpha": torch.tensor(alpha)})
            w2, scale = (a @ b.reshape(r, -1)).reshape(o2, i2, *kernel), alpha / r
        else:
            w2, scale = torch.randn(o2, i2, *kernel, generator=g) * 0.3, 1.0
            lokr[key + ".lokr_w2"] = w2
        factor = w1.reshape(o1, i1, *([1] * len(kernel)))
        delta = torch.kron(factor, w2) * scale
        expected.append({"file": "sd1-lokr", "weight": weight, "target": name, "shape": list(w.shape),
                         "values": flat(w + weight * delta)})
    save_file({k: v.contiguous() for k, v in loha.items()}, str(loras / "sd1-loha.safetensors"))
    save_file({k: v.contiguous() for k, v in lokr.items()}, str(loras / "sd1-lokr.safetensors"))
    (fixtures / "lycoris.json").write_text(json.dumps({"cases": expected}))
