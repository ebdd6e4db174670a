"""lora-manager: a fast, trustworthy catalog of a Stable Diffusion LoRA library."""

__version__ = "0.1.0"
