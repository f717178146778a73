#!/usr/bin/env python3
"""Writes PyTorch reference inputs and outputs for every Tensors kernel.

A dev tool, never needed by the test command: its output is committed as
Tests/TensorsTests/Fixtures/kernels.json (index) + kernels.bin (little-endian float32).
Run: pip install torch && python3 Tools/make_kernel_fixtures.py
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F

from fixture_support import TensorBlob  # Tools/, next to this script

torch.manual_seed(1234)
out_dir = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "TensorsTests" / "Fixtures"
cases = []
blob = TensorBlob()
put = blob.put


def case(kind, name, params, inputs, output):
    cases.append({"kind": kind, "name": name, "params": params,
                  "inputs": {k: put(v) for k, v in inputs.items()}, "output": put(output)})


r = torch.randn

# linear
for (rows, fin, fout, bias) in [(5, 7, 3, True), (2 * 77, 64, 48, True), (9, 13, 11, False)]:
    x, w, b = r(rows, fin), r(fout, fin), r(fout)
    case("linear", f"linear_{rows}x{fin}->{fout}{'_bias' if bias else ''}", {},
         {"x": x, "weight": w, **({"bias": b} if bias else {})}, F.linear(x, w, b if bias else None))

# conv2d: odd channel counts, stride 2, padding 0/1, 1x1 and 3x3, batch > 1
for (n, cin, cout, h, w, k, s, p, bias) in [
    (1, 3, 5, 9, 11, 3, 1, 1, True),
    (2, 6, 7, 8, 8, 3, 1, 1, True),
    (2, 5, 4, 9, 9, 3, 2, 1, True),
    (1, 4, 6, 10, 7, 3, 2, 0, True),
    (2, 13, 9, 6, 5, 1, 1, 0, True),
    (1, 8, 8, 7, 7, 3, 1, 0, False),
    (1, 3, 4, 12, 12, 4, 2, 1, True),
    (1, 4, 3, 6, 6, 5, 1, 2, True),
]:
    x, wt, b = r(n, cin, h, w), r(cout, cin, k, k) * 0.3, r(cout)
    case("conv2d", f"conv_{n}x{cin}x{h}x{w}_k{k}s{s}p{p}->{cout}", {"stride": s, "padding": p},
         {"x": x, "weight": wt, **({"bias": b} if bias else {})}, F.conv2d(x, wt, b if bias else None, s, p))

# group norm (SD uses 32 groups, eps 1e-5 / 1e-6)
for (n, c, h, w, g, eps) in [(2, 12, 5, 7, 4, 1e-5), (1, 64, 4, 4, 32, 1e-6), (1, 9, 3, 3, 3, 1e-5)]:
    x, wt, b = r(n, c, h, w) * 3 + 1, r(c), r(c)
    case("group_norm", f"group_norm_{n}x{c}x{h}x{w}_g{g}", {"groups": g, "eps": eps},
         {"x": x, "weight": wt, "bias": b}, F.group_norm(x, g, wt, b, eps))

# layer norm over the last dimension
for (shape, eps) in [((2, 7, 24), 1e-5), ((3, 77, 40), 1e-5), ((5, 13), 1e-6)]:
    x, wt, b = r(*shape) * 2 - 0.5, r(shape[-1]), r(shape[-1])
    case("layer_norm", f"layer_norm_{'x'.join(map(str, shape))}", {"eps": eps},
         {"x": x, "weight": wt, "bias": b}, F.layer_norm(x, shape[-1:], wt, b, eps))

# activations and softmax
x = torch.cat([torch.linspace(-12, 12, 997), r(3) * 4])
case("silu", "silu", {}, {"x": x}, F.silu(x))
case("gelu", "gelu_erf", {}, {"x": x}, F.gelu(x))
case("gelu_tanh", "gelu_tanh", {}, {"x": x}, F.gelu(x, approximate="tanh"))
case("quick_gelu", "quick_gelu", {}, {"x": x}, x * torch.sigmoid(1.702 * x))
for shape in [(3, 17), (2, 4, 77), (1, 1000)]:
    x = r(*shape) * 5
    case("softmax", f"softmax_{'x'.join(map(str, shape))}", {}, {"x": x}, torch.softmax(x, dim=-1))

# geglu (the UNet's feed-forward gate): x [.., 2d] -> a * gelu(b)
x = r(2, 5, 26)
a, g = x.chunk(2, dim=-1)
case("geglu", "geglu_2x5x26", {}, {"x": x}, a * F.gelu(g))

# multi-head attention: self and cross (77 keys), heads split from channels
def mha(q, k, v, heads):
    b, nq, c = q.shape
    d = c // heads
    split = lambda t: t.reshape(b, t.shape[1], heads, d).transpose(1, 2)
    o = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return o.transpose(1, 2).reshape(b, nq, c)

for (b, nq, nk, c, heads) in [(2, 64, 64, 40, 5), (2, 33, 77, 64, 8), (1, 300, 77, 24, 3), (1, 257, 257, 16, 2)]:
    q, k, v = r(b, nq, c), r(b, nk, c), r(b, nk, c)
    case("attention", f"attention_{b}x{nq}x{nk}x{c}_h{heads}", {"heads": heads},
         {"q": q, "k": k, "v": v}, mha(q, k, v, heads))

# causal self-attention (CLIP's text encoder)
q, k, v = r(2, 12, 32), r(2, 12, 32), r(2, 12, 32)
qs, ks, vs = (t.reshape(2, 12, 4, 8).transpose(1, 2) for t in (q, k, v))
o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True).transpose(1, 2).reshape(2, 12, 32)
case("attention_causal", "attention_causal_2x12x32_h4", {"heads": 4}, {"q": q, "k": k, "v": v}, o)

# nearest 2x upsample, concat, broadcasting add/mul
x = r(2, 3, 4, 5)
case("upsample_nearest2x", "upsample_2x3x4x5", {}, {"x": x}, F.interpolate(x, scale_factor=2.0, mode="nearest"))
a, b2 = r(2, 3, 4, 5), r(2, 6, 4, 5)
case("concat", "concat_channels", {"axis": 1}, {"a": a, "b": b2}, torch.cat([a, b2], dim=1))
a, b2 = r(2, 3, 4, 5), r(2, 3, 4, 5)
case("concat", "concat_batch", {"axis": 0}, {"a": a, "b": b2}, torch.cat([a, b2], dim=0))
for (sa, sb) in [((2, 3, 4, 5), (1, 3, 1, 1)), ((2, 3, 4, 5), (2, 3, 1, 1)), ((4, 6), (6,)), ((2, 1, 5), (3, 1)),
                 ((3, 4), (3, 4))]:
    a, b2 = r(*sa), r(*sb)
    tag = f"{'x'.join(map(str, sa))}_{'x'.join(map(str, sb))}"
    case("add", f"add_{tag}", {}, {"a": a, "b": b2}, a + b2)
    case("mul", f"mul_{tag}", {}, {"a": a, "b": b2}, a * b2)

# embedding lookup
table = r(50, 12)
ids = torch.tensor([0, 49, 3, 3, 17, 1])
case("embedding", "embedding_50x12", {"ids": ids.tolist()}, {"table": table}, F.embedding(ids, table))

# sinusoidal timestep embedding, as diffusers' get_timestep_embedding
def timestep_embedding(t, dim, flip_sin_to_cos, shift, max_period=10000):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb

t = torch.tensor([999.0, 981.0, 500.0, 1.0, 0.0])
case("timestep_embedding", "timestep_320_flip", {"dim": 320, "flip": True, "shift": 0.0,
                                                 "timesteps": t.tolist()}, {}, timestep_embedding(t, 320, True, 0))
case("timestep_embedding", "timestep_33_noflip", {"dim": 33, "flip": False, "shift": 1.0,
                                                  "timesteps": t.tolist()}, {}, timestep_embedding(t, 33, False, 1))

# reductions the schedulers use
x = r(3, 4, 5) * 2 + 0.5
case("sum", "sum_all", {}, {"x": x}, x.sum().reshape(1))
case("mean", "mean_all", {}, {"x": x}, x.mean().reshape(1))
case("std", "std_all", {}, {"x": x}, x.std().reshape(1))
case("abs_max", "abs_max_all", {}, {"x": x}, x.abs().max().reshape(1))

out_dir.mkdir(parents=True, exist_ok=True)
(out_dir / "kernels.bin").write_bytes(bytes(blob.data))
(out_dir / "kernels.json").write_text(json.dumps({"torch": torch.__version__, "cases": cases}, indent=1))
print(f"{len(cases)} cases, {len(blob)} bytes -> {out_dir}")
