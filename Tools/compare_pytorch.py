"""Times `farm bench`, diffusers on PyTorch (CPU, float32) and the same diffusers modules compiled by OpenVINO (the
CPU runtime behind FastSD CPU; f32 inference precision) for the same SD 1.5 (or SDXL) shapes in one run and prints
ours / PyTorch and ours / OpenVINO per figure (below 1: we are faster).

    pip install torch diffusers transformers openvino  # dev tools only, never needed by the farm
    swift build -c release --product farm
    python3 Tools/compare_pytorch.py [--arch sd15|sdxl] [--sizes 512,256] [--steps 20] [--threads N]
                                     [--peers torch,openvino] [--check] [--json FILE]

With --arch sdxl every side gets SDXL 1.0 base's shapes (CLIP ViT-L and OpenCLIP ViT-bigG with its projection, the
320/640/1280 UNet with 1/2/10 transformer layers and 2048-wide context, SD's VAE), the UNet call gets the pooled
text and size conditioning, and the end-to-end run is diffusers' StableDiffusionXLPipeline (use --sizes 1024
--steps 2: a 1024² SDXL step takes minutes on a small machine).

Every side gets random weights of SD 1.5's shapes (UNet 320/640/1280/1280 with 768-wide
cross-attention, CLIP ViT-L/14 text encoder, the 128/256/512/512 VAE), the same number of
threads, a UNet call with batch 2 (classifier-free guidance), the text encoder on prompt and
negative prompt, a VAE decode of one latent, and DPM++ 2M for the end-to-end run. Each size runs in
its own process for each peer, so peak memory is that size's. `--peers` picks the peers (a quick run may skip
one); `--check` has the OpenVINO process compare its compiled models' outputs with PyTorch's once, so that both
are timed on the same network (see compare_openvino.py).
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = ["unet_step_s", "text_encode_s", "vae_decode_s", "total_20_steps_s", "peak_rss_mb"]
PROMPT, NEGATIVE = "a lighthouse on a cliff at sunset, oil painting, detailed", "blurry"


def best(repeats, body):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return min(times)


def build_sdxl(threads):
    """Random-weight modules of SDXL 1.0 base's shapes (seed 0), as both peers run them."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    sys.path.insert(0, str(ROOT / "Tools" / "demo_model"))
    from train_demo_model import tokenizer_files

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816).eval()
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4,
                        sample_size=1024, scaling_factor=0.13025).eval()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")).eval()
    text2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                       num_attention_heads=20, max_position_embeddings=77,
                                                       hidden_act="gelu", projection_dim=1280)).eval()
    folder = pathlib.Path(tempfile.mkdtemp())
    tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer2 = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77, pad_token="!")
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text, text_encoder_2=text2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer2, unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_sd15(threads):
    """Random-weight modules of SD 1.5's shapes (seed 0), as both peers run them."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    sys.path.insert(0, str(ROOT / "Tools" / "demo_model"))
    from train_demo_model import tokenizer_files

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512).eval()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
                                        hidden_act="quick_gelu")).eval()
    folder = pathlib.Path(tempfile.mkdtemp())
    tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def measure_pytorch_xl(size, steps, threads):
    import torch
    pipe = build_sdxl(threads)
    unet, vae = pipe.unet, pipe.vae
    prompt, negative = PROMPT, NEGATIVE
    side = size // 8
    repeats = 1 if size >= 1024 else 2
    with torch.inference_mode():
        text_s = best(3, lambda: pipe.encode_prompt(prompt, negative_prompt=negative))
        context, negative_context, pooled, negative_pooled = pipe.encode_prompt(prompt, negative_prompt=negative)
        context = torch.cat([negative_context, context])
        added = {"text_embeds": torch.cat([negative_pooled, pooled]),
                 "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=torch.float32)}
        latents = torch.randn(2, 4, side, side)
        t = torch.tensor(500)
        unet(latents, t, context, added_cond_kwargs=added)
        unet_s = best(repeats, lambda: unet(latents, t, context, added_cond_kwargs=added))
        vae_s = best(repeats, lambda: vae.decode(latents[:1]))
        start = time.perf_counter()
        pipe(prompt, negative_prompt=negative, height=size, width=size, num_inference_steps=steps, output_type="np")
        total_s = time.perf_counter() - start
    return {"unet_step_s": unet_s, "text_encode_s": text_s, "vae_decode_s": vae_s, "total_20_steps_s": total_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_pytorch(size, steps, threads):
    import torch
    pipe = build_sd15(threads)
    unet, vae, text, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    prompt, negative = PROMPT, NEGATIVE
    ids = tokenizer([prompt, negative], padding="max_length", max_length=77, return_tensors="pt").input_ids
    side = size // 8
    with torch.inference_mode():
        text_s = best(3, lambda: text(ids))
        context = text(ids).last_hidden_state
        latents = torch.randn(2, 4, side, side)
        t = torch.tensor(500)
        unet(latents, t, context)
        unet_s = best(2, lambda: unet(latents, t, context))
        vae_s = best(2, lambda: vae.decode(latents[:1]))
        start = time.perf_counter()
        pipe(prompt, negative_prompt=negative, height=size, width=size, num_inference_steps=steps, output_type="np")
        total_s = time.perf_counter() - start
    return {"unet_step_s": unet_s, "text_encode_s": text_s, "vae_decode_s": vae_s, "total_20_steps_s": total_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


PEERS = {"torch": "PyTorch", "openvino": "OpenVINO"}


def measure_peer(peer, size, steps, threads, arch, check):
    if peer == "openvino":
        sys.path.insert(0, str(ROOT / "Tools"))
        from compare_openvino import measure_openvino
        return measure_openvino(size, steps, threads, arch, check, build_sd15, build_sdxl, PROMPT, NEGATIVE)
    measure = measure_pytorch_xl if arch == "sdxl" else measure_pytorch
    return measure(size, steps, threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--farm", default=str(ROOT / ".build" / "release" / "farm"))
    parser.add_argument("--arch", default="sd15", choices=["sd15", "sdxl"])
    parser.add_argument("--sizes", default="512,256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", default="torch,openvino", help="comma-separated peers: torch, openvino")
    parser.add_argument("--check", action="store_true",
                        help="compare OpenVINO's outputs with PyTorch's once (same network) before timing")
    parser.add_argument("--json", type=pathlib.Path, help="also write every side's figures here")
    parser.add_argument("--only", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peer", default="torch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure_peer(args.peer, args.only, args.steps, args.threads, args.arch, args.check)))
        return
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        sys.exit(f"unknown peer(s) {unknown}: choose from {', '.join(PEERS)}")
    sizes = [s.strip() for s in args.sizes.split(",")]
    print(f"farm bench ({args.threads} threads)...", file=sys.stderr, flush=True)
    # farm bench's progress (each step's seconds, memory) goes straight to this stderr; only its JSON is read.
    ours = json.loads(subprocess.run([args.farm, "bench", "--json", "--arch", args.arch, "--sizes", args.sizes,
                                      "--steps", str(args.steps), "--threads", str(args.threads)],
                                     check=True, stdout=subprocess.PIPE, text=True).stdout)
    print(json.dumps(ours), file=sys.stderr, flush=True)
    figures = {peer: {} for peer in peers}
    for peer in peers:
        for size in sizes:
            print(f"{PEERS[peer]} {size}x{size}...", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--only", size, "--peer", peer, "--steps", str(args.steps),
                       "--arch", args.arch, "--threads", str(args.threads)] + (["--check"] if args.check else [])
            run = subprocess.run(command, capture_output=True, text=True)
            sys.stderr.write("".join(line + "\n" for line in run.stderr.splitlines() if line.startswith("check ")))
            if run.returncode != 0:
                sys.exit(f"the {PEERS[peer]} {size}x{size} run failed:\n{run.stderr[-3000:]}")
            figures[peer][size] = json.loads(run.stdout.strip().splitlines()[-1])
    header = f"{'size':>5} {'figure':<18} {'ours':>10}" + "".join(f" {PEERS[p]:>10}" for p in peers)
    print(header + "".join(f" {'ours/' + PEERS[p]:>15}" for p in peers))
    for size in sizes:
        for key in KEYS:
            a = ours[size][key]
            row = f"{size:>5} {key:<18} {a:>10.3f}" + "".join(f" {figures[p][size][key]:>10.3f}" for p in peers)
            print(row + "".join(f" {a / figures[p][size][key]:>15.2f}" for p in peers))
        o = ours[size]
        print(f"{size:>5} {'unet GFLOP/s':<18} {o['unet_gflops']:>10.1f} "
              f"{o['unet_gflops'] / o['sgemm_gflops'] * 100:.1f} % of sgemm {o['sgemm_gflops']:.1f}")
    if args.json:
        record = {"ours": ours, "threads": args.threads, "arch": args.arch}
        record.update({"pytorch" if p == "torch" else p: figures[p] for p in peers})
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
