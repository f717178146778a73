"""Trains the bundled `demo` model: an SD 1.x-structured pipeline (AutoencoderKL, CLIP text
encoder with the real CLIP tokenizer, UNet2DConditionModel with cross-attention) at 64x64 pixels
on the procedural scenes of shapes.py, and saves it as a diffusers folder (fp16 weights).

    pip install torch diffusers transformers safetensors pillow    # dev tools only
    python3 Tools/demo_model/train_demo_model.py                    # all phases, about an hour on 2 cores

Phases (each resumes from its checkpoint in --work): `vae` (autoencoder, L1 + small KL),
`latents` (encodes a fixed set of scenes once), `text` (the text encoder learns to read the
captions: from the end-of-text token on, every token must name the scene's shape, colour, size,
place and background), `unet` (the UNet under that frozen encoder, 10 % empty captions for
classifier-free guidance, EMA weights), `export` (the diffusers folder) and `eval` (renders the
held-out captions with diffusers and scores them as the Swift test does).
"""
import argparse
import json
import math
import pathlib
import random
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import shapes  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
MERGES_TXT = ROOT / "Sources" / "StableDiffusion" / "Resources" / "demo" / "tokenizer" / "merges.txt"
DEFAULT_OUT = ROOT / "Sources" / "StableDiffusion" / "Resources" / "demo"

VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
                  up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[32, 64, 64],
                  layers_per_block=1, latent_channels=4, norm_num_groups=16, sample_size=64)
UNET_CONFIG = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=[32, 64, 64],
                   down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                   up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                   layers_per_block=1, cross_attention_dim=64, attention_head_dim=2, norm_num_groups=8)


def vae_config(args):
    """VAE_CONFIG with the widths asked for: one more level halves the latent grid."""
    config = dict(VAE_CONFIG)
    config["block_out_channels"] = [int(c) for c in args.vae_channels.split(",")]
    config["down_block_types"] = ["DownEncoderBlock2D"] * len(config["block_out_channels"])
    config["up_block_types"] = ["UpDecoderBlock2D"] * len(config["block_out_channels"])
    return config


def unet_config(args):
    """UNET_CONFIG with the widths and cross-attention levels asked for on the command line."""
    config = dict(UNET_CONFIG)
    config["block_out_channels"] = [int(c) for c in args.unet_channels.split(",")]
    levels = [c == "1" for c in args.attention_levels.split(",")]
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)]
    config["attention_head_dim"] = args.heads
    config["sample_size"] = 64 >> (len(args.vae_channels.split(",")) - 1)
    return config
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                   num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                   bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def log(message):
    print(time.strftime("%H:%M:%S"), message, flush=True)


def byte_symbols():
    """GPT-2/CLIP's reversible byte -> printable character table (printable bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    rest = [b for b in range(256) if b not in keep]
    # The vocabulary lists the printable bytes first, then the rest (mapped above U+0100) in byte order.
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(rest))]


def tokenizer_files(folder):
    """vocab.json and merges.txt as CLIP's Hugging Face repositories ship them, from the shipped vocabulary."""
    lines = MERGES_TXT.read_text(encoding="utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = byte_symbols()
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def make_tokenizer():
    from transformers import CLIPTokenizer
    folder = pathlib.Path(tempfile.mkdtemp())
    tokenizer_files(folder)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def to_tensor(images):
    array = np.stack([np.asarray(i, dtype=np.float32) for i in images]) / 127.5 - 1
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def train_vae(args):
    from diffusers import AutoencoderKL
    path = args.work / "vae.pt"
    vae = AutoencoderKL(**vae_config(args))
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0)
    step = 0
    if path.exists():
        state = torch.load(path, map_location="cpu")
        vae.load_state_dict(state["model"]); opt.load_state_dict(state["opt"]); step = state["step"]
    rng = random.Random(1 + step)
    log(f"vae: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M parameters, from step {step}")
    start, last = time.time(), time.time()
    while step < args.vae_steps:
        lr = 1e-3 * min(1, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.vae_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        # Random 32x32 crops: a quarter of the arithmetic, and the network is convolutional anyway.
        x = to_tensor([shapes.sample(rng)[0] for _ in range(args.vae_batch)])
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        top, left = rng.randrange(0, 33, factor), rng.randrange(0, 33, factor)
        x = x[:, :, top:top + 32, left:left + 32]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec = (recon - x).abs().mean() + F.mse_loss(recon, x)
        kl = posterior.kl().mean() / (3 * 32 * 32)
        loss = rec + 1e-4 * kl
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        step += 1
        if step % 50 == 0 or step == args.vae_steps:
            log(f"vae step {step}: l1+mse {rec.item():.4f} kl {kl.item():.3f} lr {lr:.2e} "
                f"({(time.time() - start) / 60:.1f} min)")
        if time.time() - last > 120 or step == args.vae_steps:
            torch.save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, path)
            last = time.time()
    return vae


def scene_chunk(job):
    """Scenes `start..<start+count` of the training set: each chunk has its own seed, so the set
    is the same however many processes draw it."""
    start, count, sizes, outline = job
    shapes.SIZES.update(sizes)
    shapes.OUTLINE = outline
    rng = random.Random(12345 + start)
    return [shapes.sample(rng)[:2] for _ in range(count)]


def encode_latents(args, vae):
    import multiprocessing
    path = args.work / "latents.pt"
    if path.exists():
        return torch.load(path)
    means, stds, captions = [], [], []
    vae.eval().to(args.device)
    jobs = [(start, min(256, args.scenes - start), dict(shapes.SIZES), shapes.OUTLINE) for start in range(0, args.scenes, 256)]
    with multiprocessing.Pool(max(1, torch.get_num_threads())) as pool, torch.no_grad():
        for number, batch in enumerate(pool.imap(scene_chunk, jobs)):
            dist = vae.encode(to_tensor([b[0] for b in batch]).to(args.device)).latent_dist
            means.append(dist.mean.half().cpu()); stds.append(dist.std.half().cpu())
            captions += [b[1] for b in batch]
            if number % 20 == 0:
                log(f"latents: {jobs[number][0] + len(batch)}/{args.scenes}")
    data = {"mean": torch.cat(means), "std": torch.cat(stds), "captions": captions}
    data["scale"] = 1.0 / data["mean"].float().std().item()
    torch.save(data, path)
    return data


# What the text encoder is taught to read from a caption: one classifier per attribute, over
# the tokens from the end-of-text token on. The second background colour has a class for "none".
ATTRIBUTES = (("shape", shapes.SHAPES), ("colour", list(shapes.COLOURS)), ("size", list(shapes.SIZES)),
              ("position", list(shapes.POSITIONS)), ("background", list(shapes.COLOURS)),
              ("background2", list(shapes.COLOURS) + ["none"]))


def attribute_labels(attributes):
    """The class of each of ATTRIBUTES for a scene's (shape, colour, size, position, background)."""
    shape, colour, size, position, background = attributes
    first, second = (background, "none") if isinstance(background, str) else background
    values = (shape, colour, size, position, first, second)
    return [classes.index(v) for (_, classes), v in zip(ATTRIBUTES, values)]


def train_text(args):
    """Teaches the CLIP-structured encoder what each caption says, before the UNet sees it.

    SD's text encoder is CLIP, pretrained to tell captions apart; the UNet only has to learn where
    to put what the tokens already say. Trained from scratch together with the UNet, ours never
    learnt the place words: the UNet can only use a place word once the encoder's tokens carry it
    distinctly, and the encoder only gets a gradient for it once the UNet uses it, so both stayed
    at chance (quadrants 18-29/100 in every variant tried, after 3 000 to 16 000 steps). Here the encoder
    first learns, from captions drawn fresh every batch (no images needed), to name every attribute
    at every token from the end-of-text token on; those tokens then carry the whole scene, place
    included. Measured at high noise (a UNet trained only at t >= 700, the quadrant of its
    clean-image prediction): 82 of 100 held-out scenes right after 1 000 steps under this encoder,
    7-17 of 100 with the jointly trained one; fine-tuning this encoder along with the UNet brought
    it back to chance (12 of 100), so it stays frozen."""
    from transformers import CLIPTextConfig, CLIPTextModel
    path = args.work / "text.pt"
    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).to(args.device)
    heads = torch.nn.ModuleList([torch.nn.Linear(TEXT_CONFIG["hidden_size"], len(c)) for _, c in ATTRIBUTES]).to(args.device)
    opt = torch.optim.AdamW(list(text.parameters()) + list(heads.parameters()), lr=1e-3, weight_decay=0)
    step = 0
    if path.exists():
        state = torch.load(path, map_location=args.device)
        text.load_state_dict(state["model"]); heads.load_state_dict(state["heads"]); opt.load_state_dict(state["opt"])
        step = state["step"]
    if step >= args.text_steps:
        return text
    tokenizer = make_tokenizer()
    eos = TEXT_CONFIG["eos_token_id"]

    def loss_and_accuracy(captions, labels):
        ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids.to(args.device)
        hidden = text(ids).last_hidden_state
        # The first end-of-text token and the padding after it (the same token id) see the whole caption.
        after = (torch.arange(ids.shape[1], device=args.device)[None] >= (ids == eos).int().argmax(1)[:, None]).float()
        labels = torch.tensor(labels, device=args.device)
        loss, right = 0.0, []
        for k, head in enumerate(heads):
            logits = head(hidden)
            target = labels[:, k][:, None].expand(-1, ids.shape[1])
            ce = F.cross_entropy(logits.permute(0, 2, 1), target, reduction="none")
            loss = loss + (ce * after).sum() / after.sum()
            right.append(((logits.argmax(-1) == target).float() * after).sum().item() / after.sum().item())
        return loss, right

    rng = random.Random(31 + step)
    held_out = shapes.held_out_cases(100)
    held_labels = [attribute_labels((c["shape"], c["colour"], c["size"], c["position"], c["background"])) for c in held_out]
    log(f"text: {sum(p.numel() for p in text.parameters()) / 1e6:.2f} M parameters, from step {step}")
    while step < args.text_steps:
        scenes = [shapes.random_scene(rng) for _ in range(128)]
        loss, _ = loss_and_accuracy([s[2] for s in scenes], [attribute_labels(s[0]) for s in scenes])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        step += 1
        if step % 100 == 0 or step == args.text_steps:
            with torch.no_grad():
                _, right = loss_and_accuracy([c["prompt"] for c in held_out], held_labels)
            named = ", ".join(f"{name} {r:.2f}" for (name, _), r in zip(ATTRIBUTES, right))
            log(f"text step {step}: loss {loss.item():.4f}; read from the 100 held-out captions: {named}")
    torch.save({"model": text.state_dict(), "heads": heads.state_dict(), "opt": opt.state_dict(), "step": step}, path)
    return text


def train_unet(args, data, vae_for_eval=None):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    path = args.work / "unet.pt"
    device = args.device
    config = unet_config(args)
    unet = UNet2DConditionModel(**config).to(device)
    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    # `pretrained` (the default): the encoder from the `text` phase, frozen, as SD freezes CLIP.
    # `trained` (jointly from scratch) and `frozen` (random) are the earlier recipes, kept for
    # comparison: with either, the shape's place stayed at chance (see train_text).
    if args.text_encoder == "pretrained":
        text.load_state_dict(train_text(args).state_dict())
    elif args.token_init_std:
        with torch.no_grad():
            text.get_input_embeddings().weight.normal_(0, args.token_init_std)
    trainable_text = args.text_encoder == "trained"
    text.to(device).requires_grad_(trainable_text)
    params = list(unet.parameters()) + (list(text.parameters()) if trainable_text else [])
    groups = [{"params": list(unet.parameters()), "weight_decay": 1e-2}]
    if trainable_text:
        groups.append({"params": list(text.parameters()), "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=args.lr)
    ema_unet = UNet2DConditionModel(**config).to(device); ema_unet.load_state_dict(unet.state_dict())
    ema_text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).to(device); ema_text.load_state_dict(text.state_dict())
    step = 0
    if path.exists():
        state = torch.load(path, map_location=device)
        unet.load_state_dict(state["unet"]); text.load_state_dict(state["text"]); opt.load_state_dict(state["opt"])
        ema_unet.load_state_dict(state["ema_unet"]); ema_text.load_state_dict(state["ema_text"]); step = state["step"]
    log(f"unet: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M, text: "
        f"{sum(p.numel() for p in text.parameters()) / 1e6:.2f} M parameters, from step {step}")
    tokenizer = make_tokenizer()
    ids = tokenizer(data["captions"], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids.to(device)
    empty = tokenizer([""], padding="max_length", max_length=77, return_tensors="pt").input_ids.to(device)
    schedule = DDPMScheduler(**SCHEDULE)
    alphas = schedule.alphas_cumprod.to(device)
    scale = data["scale"]
    means, stds = data["mean"].to(device), data["std"].to(device)
    ema_params = [p for m in (ema_unet, ema_text) for p in m.parameters()]
    live_params = [p.detach() for m in (unet, text) for p in m.parameters()]
    gen = torch.Generator(device).manual_seed(7 + step)
    n = len(data["captions"])
    start, last = time.time(), time.time()
    while step < args.unet_steps:
        if args.minutes and time.time() - start > args.minutes * 60:
            log(f"unet: stopping at step {step} after {args.minutes} min (--minutes)")
            break
        lr = args.lr * min(1, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.unet_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        index = torch.randint(0, n, (args.batch,), generator=gen, device=device)
        latents = (means[index].float() + stds[index].float() * torch.randn((args.batch,) + tuple(means.shape[1:]), generator=gen, device=device)) * scale
        tokens = ids[index].clone()
        drop = torch.rand(args.batch, generator=gen, device=device) < 0.1
        tokens[drop] = empty[0]
        # --t-power above 1 draws more of the noisiest timesteps (density ~ t^(p-1)).
        u = torch.rand(args.batch, generator=gen, device=device)
        t = (u ** (1 / args.t_power) * 1000).long().clamp(max=999)
        noise = torch.randn(latents.shape, generator=gen, device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        with torch.set_grad_enabled(trainable_text):
            context = text(tokens).last_hidden_state
        pred = unet(noisy, t, context).sample
        # Where the shape goes is decided in the first, noisiest sampling steps, and only the
        # caption can tell it. Measured on the clean-latent error, the loss weight there must not
        # vanish: an epsilon loss weighs it by the SNR (~0.005 at t = 999), and so does min-SNR
        # (Hang et al. 2023) in its usual form, min(SNR, 5) / (SNR + 1) on the v loss; models
        # trained either way placed the shape wherever the seed's noise put it, whatever the
        # caption said. Here the clean-latent weight is min(SNR, 5) + 1: about 1 at high noise,
        # at most 6 at low noise (where a plain v loss would weigh it by up to ~1000).
        snr = a.view(-1) / (1 - a.view(-1))
        x0_weight = torch.clamp(snr, max=5.0) + 1
        if args.prediction == "v_prediction":
            target = a.sqrt() * noise - (1 - a).sqrt() * latents
            weight = x0_weight / (snr + 1)
        else:
            target = noise
            weight = x0_weight / snr
        loss = (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, live_params, 1 - decay)
        if step % 100 == 0 or step == args.unet_steps:
            log(f"unet step {step}: loss {loss.item():.4f} lr {lr:.2e} ({(time.time() - start) / 60:.1f} min)")
        if args.eval_every and step % args.eval_every == 0 and step < args.unet_steps:
            export(args, vae_for_eval, ema_unet, ema_text, scale, out=args.work / "checkpoint")
            evaluate(args, folder=args.work / "checkpoint", label=f"step {step}")
        if time.time() - last > 180 or step == args.unet_steps or (args.minutes and time.time() - start > args.minutes * 60):
            torch.save({"unet": unet.state_dict(), "text": text.state_dict(), "opt": opt.state_dict(),
                        "ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(), "step": step}, path)
            last = time.time()
    return ema_unet, ema_text


def written_config(config):
    """A diffusers config as it is written out, without `_use_default_values`: diffusers loads
    every key listed there with the class's default and ignores the value beside it, so the
    scaling factor set after the VAE was made (register_to_config keeps it listed) would be read
    back as 0.18215. Every value written is then the value used, by diffusers and the engine alike."""
    written = dict(config)
    written.pop("_use_default_values", None)
    return written


def export(args, vae, unet, text, scale, out=None):
    from diffusers import DDIMScheduler
    from safetensors.torch import save_file
    out = out or args.out
    out.mkdir(parents=True, exist_ok=True)
    vae.register_to_config(scaling_factor=round(scale, 5))
    for name, model in (("vae", vae), ("unet", unet)):
        (out / name).mkdir(exist_ok=True)
        (out / name / "config.json").write_text(json.dumps(written_config(model.config), indent=1, default=list) + "\n")
        save_file({k: v.half().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(out / name / "diffusion_pytorch_model.safetensors"))
    (out / "text_encoder").mkdir(exist_ok=True)
    config = text.config.to_dict()
    config.pop("transformers_version", None)
    (out / "text_encoder" / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    save_file({("text_model." + k if not k.startswith("text_model.") else k): v.half().cpu().contiguous()
               for k, v in text.state_dict().items()}, str(out / "text_encoder" / "model.safetensors"))
    scheduler = DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type=args.prediction)
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(written_config(scheduler.config), indent=1) + "\n")
    tokenizer_dir = out / "tokenizer"
    tokenizer_files(tokenizer_dir)
    (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=1) + "\n")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "requires_safety_checker": False}, indent=1) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"exported {out} ({total / 1e6:.1f} MB)")


def analyse(image):
    """(background colour, shape colour, quadrant) read from an image, as the Swift test does:
    every pixel takes its nearest palette colour; the background is the commonest colour on the
    border; the shape's colour is the commonest other colour among interior pixels (all four
    neighbours alike, so the thin dark fringe a VAE leaves around edges does not count); the
    quadrant is where that colour's pixels are centred."""
    pixels = np.asarray(image, dtype=np.float32)
    names = list(shapes.COLOURS)
    palette = np.array([shapes.COLOURS[c] for c in names], dtype=np.float32)
    labels = np.array(names)[((pixels[:, :, None, :] - palette) ** 2).sum(-1).argmin(-1)]
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    names, counts = np.unique(border, return_counts=True)
    background = names[counts.argmax()]
    inner = labels[1:-1, 1:-1]
    interior = ((inner == labels[:-2, 1:-1]) & (inner == labels[2:, 1:-1]) & (inner == labels[1:-1, :-2])
                & (inner == labels[1:-1, 2:]) & (inner != background))
    if interior.sum() < 8:
        return background, None, None
    names, counts = np.unique(inner[interior], return_counts=True)
    colour = names[counts.argmax()]
    ys, xs = np.nonzero(labels == colour)
    quadrant = ("top" if ys.mean() < 32 else "bottom") + " " + ("left" if xs.mean() < 32 else "right")
    return background, colour, quadrant


def evaluate(args, folder=None, label="held-out"):
    """Renders the 20 held-out captions (and with --eval-cases N, N more held-out scenes) and
    prints how many come out right, and how many have each of background, colour and quadrant."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(str(folder or args.out), safety_checker=None, torch_dtype=torch.float32)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(args.device)
    cases = shapes.held_out_cases(max(20, args.eval_cases))
    images = []
    for start in range(0, len(cases), 50):
        chunk = cases[start:start + 50]
        # The test's seeds on CPU generators, one per image, as a single-prompt call would use them.
        images += pipe([c["prompt"] for c in chunk], height=64, width=64, num_inference_steps=20, guidance_scale=args.cfg,
                       generator=[torch.Generator().manual_seed(c["seed"]) for c in chunk]).images
    tally = {"all": 0, "background": 0, "colour": 0, "quadrant": 0}
    right20 = 0
    for number, (case, image) in enumerate(zip(cases, images)):
        got = analyse(image)
        ok = got == (case["background"], case["colour"], case["position"])
        for key, value in zip(("background", "colour", "quadrant"), got):
            tally[key] += value == case[{"quadrant": "position"}.get(key, key)]
        tally["all"] += ok
        if number < 20:
            right20 += ok
            if folder is None:
                print(f"{'ok ' if ok else 'BAD'} {case['prompt']!r}: got {got}")
            if args.samples:
                args.samples.mkdir(parents=True, exist_ok=True)
                image.save(args.samples / f"{case['seed']}.png")
    spread = ", ".join(f"{k} {v}/{len(cases)}" for k, v in tally.items())
    log(f"{label}: held-out captions right: {right20}/20 ({spread})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phases", nargs="*", default=["vae", "latents", "text", "unet", "export", "eval"])
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "demo-model-work")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--vae-steps", type=int, default=1200)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--scenes", type=int, default=50000)
    parser.add_argument("--unet-steps", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--text-steps", type=int, default=600, help="steps of the text phase (batches of 128 captions)")
    parser.add_argument("--text-encoder", default="pretrained", choices=["pretrained", "trained", "frozen"],
                        help="the text phase's encoder, frozen (default); trained with the UNet from scratch; or frozen at random")
    parser.add_argument("--prediction", default="v_prediction", choices=["epsilon", "v_prediction"])
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--samples", type=pathlib.Path, help="also save the evaluation images here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--vae-channels", default="32,64,64", help="the VAE's block_out_channels (3 levels: 16x16 latents, 4: 8x8)")
    parser.add_argument("--unet-channels", default="32,64,64", help="the UNet's block_out_channels")
    parser.add_argument("--attention-levels", default="1,1,0", help="which UNet levels have cross-attention (1) or not (0)")
    parser.add_argument("--heads", type=int, default=2, help="attention heads (diffusers' attention_head_dim)")
    parser.add_argument("--token-init-std", type=float, default=0, help="initial spread of the word embeddings (0: CLIP's 0.02)")
    parser.add_argument("--outline", action="store_true", help="draw a dark outline round every shape (shapes.OUTLINE)")
    parser.add_argument("--sizes", default="7,13", help="radii in pixels of small and large shapes")
    parser.add_argument("--t-power", type=float, default=1.0, help="above 1, train more on the noisiest timesteps")
    parser.add_argument("--minutes", type=float, default=0, help="stop UNet training after this long (0: run all steps)")
    parser.add_argument("--eval-every", type=int, default=0, help="evaluate the EMA weights every N UNet steps")
    parser.add_argument("--eval-cases", type=int, default=20, help="held-out scenes to score (the first 20 are the test's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    shapes.SIZES.update(zip(("small", "large"), (int(r) for r in args.sizes.split(","))))
    if args.outline:
        shapes.OUTLINE = (15, 15, 15)
    vae = unet = text = data = None
    if any(p in args.phases for p in ("vae", "latents", "unet", "export")):
        vae = train_vae(args)
    if any(p in args.phases for p in ("latents", "unet", "export")):
        data = encode_latents(args, vae)
    if "text" in args.phases and args.text_encoder == "pretrained":
        train_text(args)
    if any(p in args.phases for p in ("unet", "export")):
        unet, text = train_unet(args, data, vae)
    if "export" in args.phases:
        export(args, vae, unet, text, data["scale"])
    if "eval" in args.phases:
        evaluate(args)


if __name__ == "__main__":
    main()
