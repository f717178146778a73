#!/usr/bin/env python3
"""Writes init images fitted by the web UI's img2img resize modes 0-2 for the resize tests (dev tool; needs Pillow).

The geometry is the AUTOMATIC1111 web UI's (modules/images.py, resize_image, with no upscaler: LANCZOS), written out
here step by step; the pixels are Pillow's, so the Swift resampler is checked byte for byte.
Output: Tests/ImagingTests/Fixtures/resize_modes.json
"""
import json
import pathlib
import random

import PIL
from PIL import Image

out = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "ImagingTests" / "Fixtures" / "resize_modes.json"


def fit(im, mode, width, height):
    """`im` fitted to width × height: 0 stretch, 1 cover and crop centred, 2 fit inside centred and fill the bands by
    stretching the edge (Pillow's default filter on an empty box at the edge, as the web UI calls it)."""
    if mode == 0:
        return im.resize((width, height), resample=Image.LANCZOS)
    ratio, source_ratio = width / height, im.width / im.height
    if mode == 1:
        w = width if ratio > source_ratio else im.width * height // im.height
        h = height if ratio <= source_ratio else im.height * width // im.width
    else:
        w = width if ratio < source_ratio else im.width * height // im.height
        h = height if ratio >= source_ratio else im.height * width // im.width
    resized = im.resize((w, h), resample=Image.LANCZOS)
    canvas = Image.new(im.mode, (width, height))
    canvas.paste(resized, box=(width // 2 - w // 2, height // 2 - h // 2))
    if mode == 2:
        if ratio < source_ratio:
            band = height // 2 - h // 2
            if band > 0:
                canvas.paste(resized.resize((width, band), box=(0, 0, width, 0)), box=(0, 0))
                canvas.paste(resized.resize((width, band), box=(0, resized.height, width, resized.height)), box=(0, band + h))
        elif ratio > source_ratio:
            band = width // 2 - w // 2
            if band > 0:
                canvas.paste(resized.resize((band, height), box=(0, 0, 0, height)), box=(0, 0))
                canvas.paste(resized.resize((band, height), box=(resized.width, 0, resized.width, height)), box=(band + w, 0))
    return canvas


rng = random.Random(29)
cases = []
for (source_w, source_h), (width, height), image_mode in [
    ((13, 7), (16, 16), "RGB"), ((20, 9), (8, 16), "RGB"), ((7, 13), (24, 8), "RGB"), ((40, 30), (16, 8), "RGB"),
    ((24, 16), (16, 24), "RGB"), ((11, 17), (32, 24), "L"),
]:
    channels = 3 if image_mode == "RGB" else 1
    # A smooth gradient plus noise: ringing and clipping both show.
    pixels = [min(255, max(0, (x * 255 // source_w + y * 97 // source_h + c * 60) % 256 + rng.randint(-40, 40)))
              for y in range(source_h) for x in range(source_w) for c in range(channels)]
    im = Image.frombytes(image_mode, (source_w, source_h), bytes(pixels))
    for mode in (0, 1, 2):
        fitted = fit(im, mode, width, height)
        cases.append({"width": source_w, "height": source_h, "channels": channels, "pixels": pixels, "mode": mode,
                      "target_width": width, "target_height": height, "expected": list(fitted.tobytes())})
# Plain resizes with boxes, both filters.
plain = []
im = Image.frombytes("RGB", (9, 6), bytes(rng.randint(0, 255) for _ in range(9 * 6 * 3)))
for size, box, name in [((20, 5), None, "lanczos"), ((4, 11), (1.5, 0.25, 8.0, 5.5), "lanczos"), ((7, 3), (0, 6, 9, 6), "bicubic"),
                        ((3, 6), (9, 0, 9, 6), "bicubic"), ((13, 13), (2, 1, 7, 4), "bicubic")]:
    resample = Image.LANCZOS if name == "lanczos" else Image.BICUBIC
    plain.append({"size": list(size), "box": list(box) if box else None, "filter": name,
                  "expected": list(im.resize(size, resample=resample, box=box).tobytes())})
out.write_text(json.dumps({"pillow": PIL.__version__, "cases": cases,
                           "plain": {"width": 9, "height": 6, "pixels": list(im.tobytes()), "cases": plain}}))
print(len(cases), "fit cases,", len(plain), "plain")
