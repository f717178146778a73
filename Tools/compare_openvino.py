"""OpenVINO, the CPU runtime behind FastSD CPU, on the same random-weight diffusers modules that
`compare_pytorch.py` times on PyTorch: the UNet, the text encoder(s) and the VAE decoder are converted
from the torch modules with `openvino.convert_model` (example inputs, then reshaped to the static shapes
of the run), compiled for the CPU with f32 inference precision and the run's thread count, and timed
like the other peers. The end-to-end run is diffusers' DPM++ 2M scheduler driving the compiled models
(text encoder, 20 CFG UNet calls, VAE decode), the loop diffusers' pipeline runs.

`compare_pytorch.py --peers openvino` imports this module in a child process per size; `--check` also
runs the torch modules once and prints the largest difference of each compiled model's output from
PyTorch's (relative to PyTorch's largest magnitude), so that both peers are timed on the same network.
"""
import gc
import resource
import sys
import time

import numpy as np


def _properties(threads):
    """f32 inference on `threads` threads, one stream: the latency setting FastSD CPU runs."""
    import openvino.properties as props
    import openvino.properties.hint as hints
    return {hints.inference_precision: "f32", props.inference_num_threads: threads,
            hints.performance_mode: hints.PerformanceMode.LATENCY, props.num_streams: 1}


def _compile(core, module, example, threads):
    """Converts a torch module with example inputs, fixes its input shapes to theirs, compiles it."""
    import openvino as ov
    import torch
    with torch.no_grad():
        model = ov.convert_model(module, example_input=example)
    model.reshape({port: ov.PartialShape(list(x.shape)) for port, x in zip(model.inputs, example)})
    return core.compile_model(model, "CPU", _properties(threads))


def _run(compiled, *inputs):
    """One inference; returns every output as a numpy array (copied: the request reuses its buffers)."""
    result = compiled([np.asarray(x) for x in inputs])
    return [np.array(result[output]) for output in compiled.outputs]


def _difference(name, ours, reference):
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    scale = max(np.abs(reference).max(), 1e-12)
    relative = np.abs(ours - reference).max() / scale
    print(f"check {name}: max |OpenVINO - PyTorch| / max |PyTorch| = {relative:.2e}", file=sys.stderr, flush=True)
    return relative


def _best(repeats, body):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return min(times)


class _Wrap:
    """torch.nn.Module wrappers that return plain tensors (convert_model wants tensors, not dataclasses)."""

    @staticmethod
    def make(forward):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self, owner):
                super().__init__()
                self.owner = owner

            def forward(self, *args):
                return forward(self.owner, *args)

        return Wrapped


def measure_openvino(size, steps, threads, arch, check, build_sd15, build_sdxl, prompt, negative):
    """Times the compiled models at `size`; returns the figures `compare_pytorch.py` tabulates."""
    import openvino as ov
    import torch

    xl = arch == "sdxl"
    pipe = build_sdxl(threads) if xl else build_sd15(threads)
    core = ov.Core()
    side = size // 8
    repeats = 1 if size >= 1024 else 2
    checks = {}
    torch.manual_seed(1)
    latents = torch.randn(2, 4, side, side)
    t = torch.tensor(500)

    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if xl else [])
    ids = [tok([negative, prompt], padding="max_length", max_length=77, return_tensors="pt").input_ids
           for tok in tokenizers]
    with torch.inference_mode():
        if xl:
            penultimate = _Wrap.make(lambda m, i: m(i, output_hidden_states=True).hidden_states[-2])
            projected = _Wrap.make(lambda m, i: (m(i, output_hidden_states=True).hidden_states[-2],
                                                 m(i, output_hidden_states=True).text_embeds))
            encoders = [_compile(core, penultimate(pipe.text_encoder).eval(), (ids[0],), threads),
                        _compile(core, projected(pipe.text_encoder_2).eval(), (ids[1],), threads)]
        else:
            last = _Wrap.make(lambda m, i: m(i).last_hidden_state)
            encoders = [_compile(core, last(pipe.text_encoder).eval(), (ids[0],), threads)]

        def encode(token_ids):
            outputs = [_run(encoder, i) for encoder, i in zip(encoders, token_ids)]
            if not xl:
                return outputs[0][0], None
            return np.concatenate([outputs[0][0], outputs[1][0]], axis=-1), outputs[1][1]

        context, pooled = encode(ids)
        if check:
            reference = pipe.text_encoder(ids[0]).last_hidden_state if not xl else None
            if reference is not None:
                checks["text_encoder"] = _difference("text encoder", context, reference.numpy())
        context_t = torch.from_numpy(context)
        added = ()
        if xl:
            time_ids = torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=torch.float32)
            added = (torch.from_numpy(pooled), time_ids)
            unet_wrap = _Wrap.make(lambda m, x, s, c, e, i: m(x, s, c, added_cond_kwargs={
                "text_embeds": e, "time_ids": i}).sample)
        else:
            unet_wrap = _Wrap.make(lambda m, x, s, c: m(x, s, c).sample)
        unet_example = (latents, t, context_t) + added
        unet = _compile(core, unet_wrap(pipe.unet).eval(), unet_example, threads)
        if check:
            checks["unet"] = _difference("UNet step", _run(unet, *unet_example)[0],
                                         unet_wrap(pipe.unet).eval()(*unet_example).numpy())
        decode_wrap = _Wrap.make(lambda m, z: m.decode(z).sample)
        decoder = _compile(core, decode_wrap(pipe.vae).eval(), (latents[:1],), threads)
        if check:
            checks["vae_decode"] = _difference("VAE decode", _run(decoder, latents[:1])[0],
                                               pipe.vae.decode(latents[:1]).sample.numpy())
    scheduler, scaling = pipe.scheduler, pipe.vae.config.scaling_factor
    del pipe
    gc.collect()

    text_s = _best(3, lambda: encode(ids))
    unet_inputs = [x.numpy() for x in unet_example]
    _run(unet, *unet_inputs)
    unet_s = _best(repeats, lambda: _run(unet, *unet_inputs))
    vae_s = _best(repeats, lambda: _run(decoder, unet_inputs[0][:1]))

    def end_to_end():
        context, pooled = encode(ids)
        extra = [pooled, unet_inputs[4]] if xl else []
        scheduler.set_timesteps(steps)
        sample = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
        for step in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([sample] * 2), step)
            noise = torch.from_numpy(_run(unet, model_input.numpy(), np.array(step.item(), dtype=np.int64),
                                          context, *extra)[0])
            uncond, cond = noise.chunk(2)
            sample = scheduler.step(uncond + 7.5 * (cond - uncond), step, sample).prev_sample
        image = _run(decoder, (sample / scaling).numpy())[0]
        return np.clip(image / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)

    start = time.perf_counter()
    end_to_end()
    total_s = time.perf_counter() - start
    figures = {"unet_step_s": unet_s, "text_encode_s": text_s, "vae_decode_s": vae_s, "total_20_steps_s": total_s,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "openvino_version": ov.__version__}
    if check:
        figures["check_relative_max_difference"] = checks
    return figures
