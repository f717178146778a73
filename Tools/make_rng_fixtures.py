#!/usr/bin/env python3
"""Writes torch.randn outputs of seeded CPU generators for the RNG tests (dev tool; needs torch).

Output: Tests/StableDiffusionTests/Fixtures/rng.json
"""
import json
import pathlib

import torch

out = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures" / "rng.json"
cases = []
for seed, shape in [(0, (1, 4, 8, 8)), (1234, (1, 4, 64, 64)), (42, (17,)), (7, (8,)), (2**32 + 5, (3,)),
                    (999, (2, 4, 5, 7)), (31337, (1,))]:
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(shape, generator=g)
    second = torch.randn((20,), generator=g)  # the stream continues where the first draw stopped
    cases.append({"seed": seed, "shape": list(shape), "first": first.flatten().tolist(), "second": second.tolist()})
out.write_text(json.dumps({"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
                           "cases": cases}))
print(len(cases), "cases")
