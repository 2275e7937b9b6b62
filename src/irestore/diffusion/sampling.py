"""Samplers for the mean-reverting SDE, all with one signature:

    sample(model, lq, sde, cond, steps, generator, callback) -> restored image

`model(x, mu, t, cond)` predicts the noise in x (the network itself, or a TiledDenoiser).
Random draws use the given CPU `torch.Generator` and are then moved to the image's device,
so a seed gives the same result on every device. SDE arithmetic is float32 throughout.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from irestore.diffusion.sde import MeanRevertingSDE
from irestore.models.conditioning import Conditioning
from irestore.registry import create_sampler, register_sampler


class NoisePredictor(Protocol):
    def __call__(self, x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor: ...


StepCallback = Callable[[int, int, int, Tensor], None]  # (step index, total steps, t, current x)


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.device)


def _time(t: int, batch: int, device: torch.device) -> Tensor:
    return torch.full((batch,), t, dtype=torch.long, device=device)


def _predict(model: NoisePredictor, x: Tensor, lq: Tensor, t: int, cond: Conditioning) -> Tensor:
    return model(x, lq, _time(t, x.shape[0], x.device), cond).float()


def sample_euler(
    model: NoisePredictor,
    lq: Tensor,
    sde: MeanRevertingSDE,
    cond: Conditioning,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Euler–Maruyama on the reverse-time SDE (the paper's sampler; steps=T by default)."""
    grid = sde.timesteps(steps or sde.T)
    x = sde.stationary_sample(lq, _randn(lq, generator))
    for i, (t, s) in enumerate(itertools.pairwise(grid)):
        score = sde.score_from_noise(_predict(model, x, lq, t, cond), t)
        x = sde.reverse_sde_step(x, lq, score, t, s, noise=_randn(x, generator) if s > 0 else None)
        if callback:
            callback(i, len(grid) - 1, t, x)
    return x


def sample_posterior(
    model: NoisePredictor,
    lq: Tensor,
    sde: MeanRevertingSDE,
    cond: Conditioning,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    stochastic: bool = True,
) -> Tensor:
    """Posterior sampling: predict x̂_0 from the noise, then draw x_s ~ q(x_s | x_t, x̂_0).

    Exact for any jump t -> s, so `steps` can be 1..T. With stochastic=False the
    posterior draw is replaced by the deterministic (DDIM-like, η = 0) update
    x_s = μ + e^{−θ̄_s}(x̂_0 − μ) + σ̄_s ε̂."""
    grid = sde.timesteps(steps or 10)
    x = sde.stationary_sample(lq, _randn(lq, generator))
    for i, (t, s) in enumerate(itertools.pairwise(grid)):
        eps = _predict(model, x, lq, t, cond)
        x0 = sde.x0_from_noise(x, lq, eps, t)
        if s == 0:
            x = x0
        elif stochastic:
            mean, std = sde.posterior(x, x0, lq, t, s)
            x = mean + std * _randn(x, generator)
        else:
            x = sde.forward_sample(x0, lq, s, eps)
        if callback:
            callback(i, len(grid) - 1, t, x)
    return x


def sample_ddim(model, lq, sde, cond, steps=None, generator=None, callback=None) -> Tensor:
    """Deterministic few-step sampler (posterior sampling with η = 0)."""
    return sample_posterior(model, lq, sde, cond, steps, generator, callback, stochastic=False)


register_sampler("euler", sample_euler, default_steps=100)
register_sampler("posterior", sample_posterior, default_steps=10)
register_sampler("ddim", sample_ddim, default_steps=10)
# What the network outputs: the noise ε of x_t (IR-SDE's parameterisation), or the clean image
# x̂_0 as a correction to the degraded image μ (x̂_0 = μ + output), which a briefly trained model
# predicts far better at large t, so few-step sampling works; or "direct": a regressor that sees
# μ alone and gives x̂_0 = μ + output in one pass (no SDE, no sampler steps).
PREDICTIONS = ("noise", "x0", "direct")


def x0_from_output(output: Tensor, mu: Tensor) -> Tensor:
    """An "x0" network's clean-image estimate: its output is the residual on μ."""
    return mu + output


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
    return prediction


def as_noise_predictor(model: NoisePredictor, sde: MeanRevertingSDE, prediction: str) -> NoisePredictor:
    """The samplers work on predicted noise; an x̂_0 network is converted exactly."""
    if check_prediction(prediction) == "noise":
        return model
    if prediction == "direct":
        raise ValueError("a direct regressor has no noise prediction: call sample(), which runs it once")

    def predict_noise(x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        return sde.noise_from_x0(x, mu, x0_from_output(model(x, mu, t, cond).float(), mu), t)

    return predict_noise


@torch.inference_mode()
def sample(
    model: NoisePredictor,
    lq: Tensor,
    sde: MeanRevertingSDE,
    cond: Conditioning,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    sampler: str = "posterior",
    prediction: str = "noise",
) -> Tensor:
    """Run the named sampler on a degraded batch `lq` (BCHW, [0,1]); returns x̂_0 (unclamped).
    `prediction` says what `model` outputs (see :data:`PREDICTIONS`)."""
    if check_prediction(prediction) == "direct":
        lq = lq.float()
        return x0_from_output(model(lq, lq, torch.zeros(lq.shape[0], device=lq.device), cond).float(), lq)
    predictor = as_noise_predictor(model, sde, prediction)
    return create_sampler(sampler)(predictor, lq.float(), sde, cond, steps, generator, callback)
