"""Helpers the fixture scripts share: a float32 tensor blob with its index, and the tiny models' pipelines.

Import it from a script in Tools/ (the script's folder is on sys.path). torch is imported here; diffusers and
transformers only by the functions that need them, so the kernel fixtures need nothing but torch.
"""
import torch


class TensorBlob:
    """Tensors appended as little-endian float32 to one byte string; each `put` returns its index entry."""

    def __init__(self):
        self.data = bytearray()

    def put(self, t):
        """Appends a tensor to the blob and returns its index entry: shape and offset in floats."""
        t = t.detach().to(torch.float32).contiguous()
        offset = len(self.data) // 4
        self.data += t.numpy().astype("<f4").tobytes()
        return {"shape": list(t.shape), "offset": offset}

    def __len__(self):
        return len(self.data)


def load_parts(folder):
    """The text encoder, UNet and VAE of a diffusers model folder, in eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    text = CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    return text, unet, vae


def prompt_ids(g):
    """A random prompt and negative prompt (1×77 ids of the tiny 1000-token vocabulary), drawn from `g` in that order."""
    return torch.randint(0, 1000, (1, 77), generator=g), torch.randint(0, 1000, (1, 77), generator=g)


def encode(text, ids, negative_ids):
    """The text encoder's last hidden states for the prompt and the negative prompt."""
    with torch.no_grad():
        return text(ids).last_hidden_state, text(negative_ids).last_hidden_state


def sd_pipeline(pipeline_class, samplers, sampler, folder, text, unet, vae, **components):
    """A diffusers pipeline of `pipeline_class` over these parts with the scheduler `samplers[sampler]` names,
    configured from the model folder; no tokenizer, safety checker or progress bar."""
    cls, extra = samplers[sampler]
    pipe = pipeline_class(vae=vae, text_encoder=text, tokenizer=None, unet=unet,
                          scheduler=cls.from_pretrained(folder / "scheduler", **extra), **components,
                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latents_and_pixels(pipe, kwargs, seeds):
    """Runs `pipe` twice from fresh generators seeded `seeds` (one per image): the final latents, then the decoded
    image as a flat list of 8-bit pixels."""
    with torch.no_grad():
        latents = pipe(**kwargs, generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="latent").images
        images = pipe(**kwargs, generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="np").images
    return latents, (images * 255).round().astype("uint8").flatten().tolist()
