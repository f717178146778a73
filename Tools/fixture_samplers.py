"""The samplers the engine has, as diffusers' scheduler classes and options: one table for every fixture script."""
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, DPMSolverSDEScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                       KDPM2DiscreteScheduler, LCMScheduler, LMSDiscreteScheduler, PNDMScheduler,
                       UniPCMultistepScheduler)

SAMPLERS = {
    "ddim": (DDIMScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "lms": (LMSDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "dpm2": (KDPM2DiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
    "lcm": (LCMScheduler, {}),
    # Its noise comes from torchsde's Brownian tree, seeded from torch's global RNG: no exact
    # latents to compare, so it has its own fixtures (sde.json, make_pipeline_fixtures.py).
    "dpmpp_sde_karras": (DPMSolverSDEScheduler, {"use_karras_sigmas": True}),
}
# The samplers whose latents diffusers reproduces exactly from a seed.
EXACT = [name for name in SAMPLERS if name != "dpmpp_sde_karras"]
