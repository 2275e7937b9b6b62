"""Mean-reverting SDE (IR-SDE, Luo et al. 2023) as pure tensor math.

    dx = θ_t (μ − x) dt + σ_t dw,   σ_t² = 2 λ² θ_t

μ is the degraded image, x_0 the clean one, λ the stationary noise level. With
θ̄_t = Σ_{i≤t} θ_i·dt the forward marginal is Gaussian in closed form:

    x_t = μ + (x_0 − μ) e^{−θ̄_t} + σ̄_t ε,    σ̄_t² = λ² (1 − e^{−2 θ̄_t})

Integer times t = 0..T index the schedule; t = 0 is the clean image. Every function
takes μ and t explicitly and returns new tensors: no model, no files, no hidden state.
A reverse step may jump from t to any s < t, which is what the few-step samplers use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class SDEConfig:
    """Everything that defines the SDE; saved in every checkpoint."""

    T: int = 100
    max_sigma: float = 50 / 255  # λ, the stationary noise std in [0, 1] image units
    schedule: str = "cosine"
    eps: float = 0.005  # e^{−θ̄_T}: how far from μ the mean still is at t = T

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown θ schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.T < 1 or not 0 < self.eps < 1 or self.max_sigma <= 0:
            raise ValueError(f"invalid SDE config {self}")

    def to_dict(self) -> dict:
        return asdict(self)


def theta_schedule(config: SDEConfig) -> Tensor:
    """Unnormalised θ_1..θ_T (float64). Cosine rises slowly at first, like the cosine β schedule."""
    if config.schedule == "constant":
        return torch.ones(config.T, dtype=torch.float64)
    s, span = 0.008, config.T + 2
    steps = torch.arange(config.T + 2, dtype=torch.float64)
    alpha_bar = torch.cos(((steps / span) + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = alpha_bar / alpha_bar[0]
    return 1 - alpha_bar[1 : config.T + 1]


# devices without float64 arithmetic: the schedule tables they index must be float32
NO_FLOAT64_DEVICES = ("mps",)


class MeanRevertingSDE:
    """Precomputed schedule tables (immutable after construction) and the SDE's formulas.

    The tables are computed in float64 and kept in ``dtype``: float64 (exact, the default), or
    float32 for a device without float64 (Apple's MPS), where a float64 lookup would fail;
    :meth:`for_device` picks one."""

    def __init__(self, config: SDEConfig = SDEConfig(), dtype: torch.dtype = torch.float64):
        self.config = config
        self.T = config.T
        self.lam = config.max_sigma
        self.dtype = dtype
        thetas = theta_schedule(config)
        self.dt = -math.log(config.eps) / float(thetas.sum())
        # index 0 is t = 0 (no diffusion yet); cast to the caller's dtype per call
        theta = torch.cat([torch.zeros(1, dtype=torch.float64), thetas])
        self._theta = theta.to(dtype)
        self._theta_bar = (torch.cumsum(theta, 0) * self.dt).to(dtype)

    @classmethod
    def for_device(cls, config: SDEConfig, device: torch.device | str) -> MeanRevertingSDE:
        """The SDE with tables a device can index: float32 where it has no float64."""
        float32 = torch.device(device).type in NO_FLOAT64_DEVICES
        return cls(config, torch.float32 if float32 else torch.float64)

    # -- schedule lookups -------------------------------------------------------------
    def theta_bar(self, t: Tensor | int) -> Tensor:
        """θ̄_t, shaped (B,1,1,1) for a tensor t (or a scalar tensor for an int)."""
        return _lookup(self._theta_bar, t)

    def sigma_bar(self, t: Tensor | int) -> Tensor:
        """Std of the forward marginal at t."""
        return self.lam * torch.sqrt(1 - torch.exp(-2 * self.theta_bar(t)))

    # -- forward process --------------------------------------------------------------
    def marginal_mean(self, x0: Tensor, mu: Tensor, t: Tensor | int) -> Tensor:
        return mu + (x0 - mu) * _as(torch.exp(-self.theta_bar(t)), x0)

    def marginal_std(self, t: Tensor | int, like: Tensor) -> Tensor:
        return _as(self.sigma_bar(t), like)

    def forward_sample(self, x0: Tensor, mu: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """x_t drawn in closed form from x_0 with the given standard-normal noise."""
        return self.marginal_mean(x0, mu, t) + self.marginal_std(t, x0) * noise

    def stationary_sample(self, mu: Tensor, noise: Tensor) -> Tensor:
        """The starting state x_T ≈ μ + λ ε."""
        return mu + self.lam * noise

    # -- score and clean-image estimates ---------------------------------------------
    def score_from_noise(self, noise: Tensor, t: Tensor | int) -> Tensor:
        """∇ log p_t(x) = −ε / σ̄_t for a (predicted) noise ε."""
        return -noise / self.marginal_std(t, noise)

    def x0_from_noise(self, xt: Tensor, mu: Tensor, noise: Tensor, t: Tensor | int) -> Tensor:
        """Invert the marginal: x̂_0 = μ + (x_t − μ − σ̄_t ε) e^{θ̄_t}."""
        decay = _as(torch.exp(-self.theta_bar(t)), xt)
        return mu + (xt - mu - self.marginal_std(t, xt) * noise) / decay

    def noise_from_x0(self, xt: Tensor, mu: Tensor, x0: Tensor, t: Tensor | int) -> Tensor:
        """The noise that places x_t on the marginal around x̂_0 (inverse of :meth:`x0_from_noise`)."""
        return (xt - self.marginal_mean(x0, mu, t)) / self.marginal_std(t, xt)

    # -- reverse steps from t to s < t --------------------------------------------------
    def _delta(self, t: Tensor | int, s: Tensor | int, like: Tensor) -> Tensor:
        return _as(self.theta_bar(t) - self.theta_bar(s), like)

    def reverse_sde_step(
        self, xt: Tensor, mu: Tensor, score: Tensor, t: Tensor | int, s: Tensor | int, noise: Tensor | None
    ) -> Tensor:
        """Euler–Maruyama step of the reverse-time SDE; noise=None gives the drift-only mean."""
        delta = self._delta(t, s, xt)  # θ·dt over the interval
        drift = delta * (mu - xt) - 2 * self.lam**2 * delta * score
        out = xt - drift
        if noise is not None:
            out = out - torch.sqrt(2 * self.lam**2 * delta) * noise
        return out

    def reverse_ode_step(self, xt: Tensor, mu: Tensor, score: Tensor, t: Tensor | int, s: Tensor | int) -> Tensor:
        """Euler step of the probability-flow ODE."""
        delta = self._delta(t, s, xt)
        return xt - (delta * (mu - xt) - self.lam**2 * delta * score)

    def posterior(
        self, xt: Tensor, x0: Tensor, mu: Tensor, t: Tensor | int, s: Tensor | int
    ) -> tuple[Tensor, Tensor]:
        """Mean and std of q(x_s | x_t, x_0) for s < t (Gaussian; exact for the OU process)."""
        a = _as(torch.exp(-(self.theta_bar(t) - self.theta_bar(s))), xt)  # decay s -> t
        c = _as(torch.exp(-self.theta_bar(s)), xt)  # decay 0 -> s
        b2 = (a * c) ** 2
        mean = mu + a * (1 - c**2) / (1 - b2) * (xt - mu) + c * (1 - a**2) / (1 - b2) * (x0 - mu)
        std = self.lam * torch.sqrt((1 - a**2) * (1 - c**2) / (1 - b2))
        return mean, std

    def optimal_reverse_state(self, xt: Tensor, x0: Tensor, mu: Tensor, t: Tensor) -> Tensor:
        """x*_{t−1}: the most likely previous state given x_t and the clean image (ML target)."""
        return self.posterior(xt, x0, mu, t, t - 1)[0]

    def ml_loss(self, pred_noise: Tensor, xt: Tensor, x0: Tensor, mu: Tensor, t: Tensor) -> Tensor:
        """Maximum-likelihood loss: L1 between the reverse step taken with the predicted
        noise (drift only) and the optimal reverse state x*_{t−1}."""
        score = self.score_from_noise(pred_noise, t)
        predicted = self.reverse_sde_step(xt, mu, score, t, t - 1, noise=None)
        target = self.optimal_reverse_state(xt, x0, mu, t)
        return (predicted - target).abs().mean()

    def x0_loss(self, pred_x0: Tensor, x0: Tensor) -> Tensor:
        """L1 between the predicted and the true clean image (the x̂_0 parameterisation)."""
        return (pred_x0 - x0).abs().mean()

    def timesteps(self, steps: int) -> list[int]:
        """A decreasing grid T = t_0 > t_1 > ... > t_steps = 0 with `steps` intervals."""
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps must be between 1 and {self.T}, got {steps}")
        return [round(self.T * (1 - i / steps)) for i in range(steps + 1)]  # Python floats: no float64 tensor


def _lookup(table: Tensor, t: Tensor | int) -> Tensor:
    if isinstance(t, int):
        return table[t]
    return table.to(t.device)[t.long()].reshape(-1, 1, 1, 1)


def _as(value: Tensor, like: Tensor) -> Tensor:
    """Cast a schedule value to the dtype, then the device, of `like` (SDE math stays fp32); in
    that order, so a float64 value from a CPU table never reaches a device as float64."""
    return value.to(dtype=like.dtype).to(device=like.device)
