"""Times `farm bench` and diffusers on PyTorch (CPU, float32) for the same SD 1.5 (or SDXL) shapes in one
run and prints the ratio ours / PyTorch per figure (below 1: we are faster).

    pip install torch diffusers transformers          # dev tools only, never needed by the farm
    swift build -c release --product farm
    python3 Tools/compare_pytorch.py [--arch sd15|sdxl] [--sizes 512,256] [--steps 20] [--threads N] [--json FILE]

With --arch sdxl both sides get SDXL 1.0 base's shapes (CLIP ViT-L and OpenCLIP ViT-bigG with its projection, the
320/640/1280 UNet with 1/2/10 transformer layers and 2048-wide context, SD's VAE), the UNet call gets the pooled
text and size conditioning, and the end-to-end run is diffusers' StableDiffusionXLPipeline (use --sizes 1024
--steps 2: a 1024² SDXL step takes minutes on a small machine).

Both sides get random weights of SD 1.5's shapes (UNet 320/640/1280/1280 with 768-wide
cross-attention, CLIP ViT-L/14 text encoder, the 128/256/512/512 VAE), the same number of
threads, a UNet call with batch 2 (classifier-free guidance), the text encoder on prompt and
negative prompt, a VAE decode of one latent, and DPM++ 2M for the end-to-end run. Each size runs in
its own process on each side, so peak memory is that size's.
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


def best(repeats, body):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_pytorch_xl(size, steps, threads):
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
    prompt, negative = "a lighthouse on a cliff at sunset, oil painting, detailed", "blurry"
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
    prompt, negative = "a lighthouse on a cliff at sunset, oil painting, detailed", "blurry"
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--farm", default=str(ROOT / ".build" / "release" / "farm"))
    parser.add_argument("--arch", default="sd15", choices=["sd15", "sdxl"])
    parser.add_argument("--sizes", default="512,256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=pathlib.Path, help="also write both sides' figures here")
    parser.add_argument("--only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        measure = measure_pytorch_xl if args.arch == "sdxl" else measure_pytorch
        print(json.dumps(measure(args.only, args.steps, args.threads)))
        return
    sizes = [s.strip() for s in args.sizes.split(",")]
    print(f"farm bench ({args.threads} threads)...", file=sys.stderr, flush=True)
    ours = json.loads(subprocess.run([args.farm, "bench", "--json", "--arch", args.arch, "--sizes", args.sizes,
                                      "--steps", str(args.steps), "--threads", str(args.threads)],
                                     check=True, capture_output=True, text=True).stdout)
    print(json.dumps(ours), file=sys.stderr, flush=True)
    torch_figures = {}
    for size in sizes:
        print(f"PyTorch {size}x{size}...", file=sys.stderr, flush=True)
        run = subprocess.run([sys.executable, __file__, "--only", size, "--steps", str(args.steps), "--arch", args.arch,
                              "--threads", str(args.threads)], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"the PyTorch {size}x{size} run failed:\n{run.stderr[-3000:]}")
        torch_figures[size] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{'size':>5} {'figure':<18} {'ours':>10} {'PyTorch':>10} {'ours/PyTorch':>13}")
    for size in sizes:
        for key in KEYS:
            a, b = ours[size][key], torch_figures[size][key]
            print(f"{size:>5} {key:<18} {a:>10.3f} {b:>10.3f} {a / b:>13.2f}")
        o = ours[size]
        print(f"{size:>5} {'unet GFLOP/s':<18} {o['unet_gflops']:>10.1f} {'':>10} "
              f"{o['unet_gflops'] / o['sgemm_gflops'] * 100:>11.1f} % of sgemm {o['sgemm_gflops']:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "pytorch": torch_figures, "threads": args.threads, "arch": args.arch},
                                        indent=1))


if __name__ == "__main__":
    main()
