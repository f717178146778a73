#!/usr/bin/env python3
"""Writes the starting noise of variation seeds and seed resizing for the variation tests (dev tool; needs torch).

The definition is the AUTOMATIC1111 web UI's (modules/rng.py, ImageRNG.first, with randn_source "CPU"): the base
noise and the variation noise come from two CPU generators seeded seed + i and subseed + i, are spherically
interpolated along the height axis of each [C, H, W] image (the web UI's slerp on dim 1), and with "seed resize from"
both are drawn at the other size and pasted centred into a full-size draw from the image's own generator.
Output: Tests/StableDiffusionTests/Fixtures/variation.json
"""
import json
import pathlib

import torch

out = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures" / "variation.json"


def randn(seed, shape):
    """The first torch.randn of `shape` from a CPU generator seeded `seed`."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def spherical(strength, low, high):
    """Slerp from `low` toward `high` by `strength`, per (channel, column) vector along H, as the web UI computes it;
    vectors parallel on average blend linearly with the web UI's weights (low·strength + high·(1 − strength))."""
    low_unit = low / low.norm(dim=1, keepdim=True)
    high_unit = high / high.norm(dim=1, keepdim=True)
    cosine = (low_unit * high_unit).sum(1)
    if cosine.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    angle = torch.acos(cosine)
    sine = torch.sin(angle)
    return (torch.sin((1.0 - strength) * angle) / sine).unsqueeze(1) * low + (torch.sin(strength * angle) / sine).unsqueeze(1) * high


def starting_noise(seed, subseed, strength, shape, resize):
    """Image noise for `seed` (the generator's first draw), blended toward `subseed`'s, resized from `resize` (H, W cells)."""
    small = shape if resize is None else (shape[0], resize[0], resize[1])
    noise = randn(seed, small)
    if strength != 0:
        noise = spherical(strength, noise, randn(subseed, small))
    if resize is None:
        return noise
    full = randn(seed, shape)  # the image's own generator, fresh: its first draw
    dx, dy = (shape[2] - small[2]) // 2, (shape[1] - small[1]) // 2
    w = small[2] if dx >= 0 else small[2] + 2 * dx
    h = small[1] if dy >= 0 else small[1] + 2 * dy
    tx, ty, sx, sy = max(dx, 0), max(dy, 0), max(-dx, 0), max(-dy, 0)
    full[:, ty:ty + h, tx:tx + w] = noise[:, sy:sy + h, sx:sx + w]
    return full


cases = []
for seed, subseed, strength, shape, resize in [
    (42, 7, 0.3, (4, 8, 12), None),
    (42, 7, 1.0, (4, 8, 12), None),
    (1000, 5, 0.65, (4, 16, 6), None),
    (42, 42, 0.25, (4, 8, 12), None),  # the same noise twice: the linear branch
    (3, 0, 0.0, (4, 8, 12), (6, 9)),  # resize from smaller: pasted centred
    (3, 11, 0.4, (4, 8, 12), (10, 15)),  # resize from larger: cropped centred
    (9, 4, 0.5, (4, 9, 7), (4, 4)),  # odd differences
]:
    batch = []
    for image in range(2):  # image i of a batch: seed + i and subseed + i
        batch.append(starting_noise(seed + image, subseed + image, strength, shape, resize).flatten().tolist())
    cases.append({"seed": seed, "subseed": subseed, "strength": strength, "shape": list(shape),
                  "resize": list(resize) if resize else None, "noise": batch})
out.write_text(json.dumps({"torch": torch.__version__, "cases": cases}))
print(len(cases), "cases")
