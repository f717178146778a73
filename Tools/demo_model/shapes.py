"""Procedural captioned scenes for the bundled `demo` model: one coloured shape on a plain or
two-tone background, 64x64 pixels, with a caption that says what is where.

    python3 Tools/demo_model/shapes.py --count 12 --out /tmp/shapes   # writes PNGs + captions.txt

The same module is imported by train_demo_model.py. Some combinations of (shape, colour, size,
position, background) are held out of training entirely (`is_held_out`); the Swift test renders
captions drawn only from those, so the model is asked for scenes it never saw worded that way.
"""
import argparse
import hashlib
import json
import pathlib
import random

from PIL import Image, ImageDraw

SIZE = 64

# Well-separated colours, so that a nearest-colour classifier can tell them apart.
COLOURS = {
    "red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 220), "yellow": (240, 220, 40),
    "white": (245, 245, 245), "black": (15, 15, 15), "orange": (245, 140, 20), "purple": (140, 50, 180),
}
SHAPES = ["circle", "square", "triangle", "star", "diamond"]
SIZES = {"small": 7, "large": 13}
# Centres in pixels (x, y).
POSITIONS = {
    "top left": (16, 16), "top right": (48, 16), "bottom left": (16, 48), "bottom right": (48, 48),
    "centre": (32, 32), "left": (16, 32), "right": (48, 32), "top": (32, 16), "bottom": (32, 48),
}
CORNERS = ["top left", "top right", "bottom left", "bottom right"]
# A dark outline round every shape (None: none; train_demo_model.py --outline sets it). Whatever
# its colours, every shape then adds the same dark ring where it stands, so where the shape is
# shows in the average picture of each position word; without it the shapes' colours average
# out, and the place words explain 0.1 % of the latents' variance. Measured (8x8-latent variant):
# a UNet trained on place-only captions at high noise for 800 steps moved its prediction 30x more
# between "top left" and "bottom right" with the outline than without; with full captions and a
# jointly trained text encoder, quadrants still stayed at chance after 3 000 steps. Not needed
# since the text encoder is pretrained to read the captions (train_demo_model.py's `text` phase):
# the shipped weights were trained without it.
OUTLINE = None
OUTLINE_WIDTH = 2


def is_held_out(shape, colour, size, position, background):
    """About one combination in eight never appears in training (plain backgrounds only)."""
    key = f"{shape}|{colour}|{size}|{position}|{background}".encode()
    return hashlib.sha256(key).digest()[0] % 8 == 0


def article(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def caption(shape, colour, size, position, background, rng=None):
    """The canonical wording, or (with rng) one of a few variants used in training."""
    where = "in the centre" if position == "centre" else f"at the {position}"
    bg = background if isinstance(background, str) else f"{background[0]} and {background[1]}"
    if rng is None:
        return f"a {size} {colour} {shape} {where} on {article(bg)} background"
    size_word = {"small": rng.choice(["small", "small", "little", "tiny"]),
                 "large": rng.choice(["large", "large", "big"])}[size]
    form = rng.randrange(4)
    if form == 0:
        return f"a {size_word} {colour} {shape} {where} on {article(bg)} background"
    if form == 1:
        return f"a {size_word} {colour} {shape} {where}, {bg} background"
    if form == 2:
        return f"{bg} background with {article(size_word)} {colour} {shape} {where}"
    return f"{article(colour)} {shape}, {size_word}, {where.replace('at the ', '')}, on {bg}"


def star_points(cx, cy, r):
    import math
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def draw(shape, colour, size, centre, background, scale=4):
    """Renders one scene at `scale` times the size, then downsamples (anti-aliased edges)."""
    n = SIZE * scale
    image = Image.new("RGB", (n, n), COLOURS[background if isinstance(background, str) else background[0]])
    d = ImageDraw.Draw(image)
    if not isinstance(background, str):  # two-tone: the first colour on top, the second below
        d.rectangle([0, n // 2, n, n], fill=COLOURS[background[1]])
    cx, cy = centre[0] * scale, centre[1] * scale
    r = SIZES[size] * scale

    def paint(r, fill):
        if shape == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif shape == "square":
            s = r * 0.85
            d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
        elif shape == "triangle":
            d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
        elif shape == "star":
            d.polygon(star_points(cx, cy, r * 1.15), fill=fill)
        elif shape == "diamond":
            d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)

    if OUTLINE:  # outside the shape, which keeps its size
        paint(r + OUTLINE_WIDTH * scale, OUTLINE)
    paint(r, COLOURS[colour])
    return image.resize((SIZE, SIZE), Image.LANCZOS)


def random_scene(rng):
    """One random training scene's attributes, jittered centre and caption, without drawing it:
    (attributes, centre, caption). Held-out combinations are skipped."""
    while True:
        shape = rng.choice(SHAPES)
        colour = rng.choice(list(COLOURS))
        size = rng.choice(list(SIZES))
        position = rng.choice(list(POSITIONS))
        others = [c for c in COLOURS if c != colour]
        if rng.random() < 0.25:
            background = tuple(rng.sample(others, 2))
        else:
            background = rng.choice(others)
            if is_held_out(shape, colour, size, position, background):
                continue
        cx, cy = POSITIONS[position]
        centre = (cx + rng.randint(-3, 3), cy + rng.randint(-3, 3))
        attributes = (shape, colour, size, position, background)
        return attributes, centre, caption(*attributes, rng)


def sample(rng):
    """One random training scene: (image, caption, attributes)."""
    attributes, centre, text = random_scene(rng)
    shape, colour, size, _, background = attributes
    return draw(shape, colour, size, centre, background), text, attributes


def held_out_cases(count=20, seed=2026):
    """`count` held-out scenes at the four corners on plain backgrounds, canonical wording."""
    rng = random.Random(seed)
    cases = []
    seen = set()
    while len(cases) < count:
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        size, position = rng.choice(list(SIZES)), rng.choice(CORNERS)
        background = rng.choice([c for c in COLOURS if c != colour])
        key = (shape, colour, size, position, background)
        if key in seen or not is_held_out(*key):
            continue
        seen.add(key)
        cases.append({"prompt": caption(*key), "shape": shape, "colour": colour, "size": size,
                      "position": position, "background": background, "seed": 1000 + len(cases)})
    return cases


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--held-out", action="store_true", help="print the held-out test cases as JSON")
    args = parser.parse_args()
    if args.held_out:
        print(json.dumps(held_out_cases(), indent=1))
        raise SystemExit
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    lines = []
    for i in range(args.count):
        image, text, _ = sample(rng)
        image.save(args.out / f"{i:05d}.png")
        lines.append(f"{i:05d}.png\t{text}")
    (args.out / "captions.txt").write_text("\n".join(lines) + "\n")
