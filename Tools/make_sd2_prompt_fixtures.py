#!/usr/bin/env python3
"""Writes diffusers' SD 2.x conditioning for prompts that contain "!" (the SD 2.x pad token).

A dev tool (pip install torch "transformers<5" safetensors), never needed by the test command.
SD 2.x tokenizer configs name "!" as the pad token, and transformers' CLIPTokenizer (which diffusers
loads) then treats every "!" in a prompt as that special token: "dawn!!!" is dawn, !, !, ! (id 0 each),
not dawn, "!!!". This script builds a small OpenCLIP-shaped text encoder with CLIP's full 49,408-token
vocabulary (GELU, fp16-stored weights), tokenizes each prompt exactly as StableDiffusionPipeline does
(padding="max_length", max_length=77, truncation=True) and records the ids and the encoder's output.

Output, under Tests/StableDiffusionTests/Fixtures/:
- models/tiny-sd2-text/        config.json + model.safetensors (fp16) of the text encoder
- sd2_prompts.json             per prompt: text, ids, hidden states [1, 77, width]
"""
import json
import pathlib
import tempfile

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

root = pathlib.Path(__file__).resolve().parent.parent
fixtures = root / "Tests" / "StableDiffusionTests" / "Fixtures"
tokenizer_files = root / "Sources" / "StableDiffusion" / "Resources" / "demo" / "tokenizer"

tokenizer = CLIPTokenizer(str(tokenizer_files / "vocab.json"), str(tokenizer_files / "merges.txt"), pad_token="!")
assert tokenizer("wow!!").input_ids == [49406, 2781, 0, 0, 49407], "transformers no longer splits '!' as the pad token"

torch.manual_seed(23)
config = CLIPTextConfig(vocab_size=49408, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
                        projection_dim=24, pad_token_id=0, bos_token_id=49406, eos_token_id=49407)
text = CLIPTextModel(config).eval()
with torch.no_grad():
    for p in text.parameters():
        # Stored as fp16: round here so that both sides compute with the same float32 values.
        p.copy_((torch.randn_like(p) * 0.3).half().float())
folder = fixtures / "models" / "tiny-sd2-text"
text.to(torch.float16).save_pretrained(folder)
text.float()

# Exactly 75 tokens ending in "!": 74 words of one token each, then the "!".
words = ["cat", "dog", "red", "blue", "sky", "tree"]
seventy_five = " ".join(words[i % len(words)] for i in range(74)) + "!"
prompts = [
    "a castle on a hill at dawn!!!", "a castle on a hill at dawn", "!", "!!!", "! a red circle", "!!a red circle",
    "a red circle!", "a red circle !", "wow! great!", "a red circle!\n", "", seventy_five,
]
cases = []
for prompt in prompts:
    ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    with torch.no_grad():
        hidden = text(torch.tensor([ids])).last_hidden_state
    cases.append({"prompt": prompt, "ids": ids, "hidden": hidden.flatten().tolist(), "shape": list(hidden.shape)})
assert len([i for i in cases[-1]["ids"] if i not in (49406, 49407)]) == 75 + (77 - 77), "75 prompt tokens"
(fixtures / "sd2_prompts.json").write_text(json.dumps({"cases": cases}))
print(len(cases), "prompts")
