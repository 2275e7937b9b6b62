"""Pretrained non-diffusion restorers that share the CLI's restore protocol (real peers to compare with)."""

from irestore.baselines.ffdnet import FFDNetDenoiser, estimate_noise_sigma

__all__ = ["FFDNetDenoiser", "estimate_noise_sigma"]
