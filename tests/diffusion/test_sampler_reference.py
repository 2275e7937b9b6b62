"""Every sampler against an independent NumPy implementation of the IR-SDE equations.

The reference below shares no code with irestore.diffusion.sde: its own cosine θ schedule, its own
posterior (Gaussian conditioning of the two OU transitions, not the closed form in sde.py) and
its own update rules. The network is not an oracle: a fixed nonlinear function of x, μ and t,
so each step's time, sign and scale change the result.

Schedule indexing (Luo et al., IR-SDE): θ_1..θ_T come from a cosine ᾱ over T + 2 points with
θ_n = 1 − ᾱ_n / ᾱ_0, and θ̄_t = dt · Σ_{n=1..t} θ_n with θ̄_0 = 0 (the paper's code subtracts θ_0
from its cumulative sum to the same effect); dt makes e^{−θ̄_T} = eps.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from irestore.diffusion.sampling import sample
from irestore.diffusion.sde import MeanRevertingSDE, SDEConfig
from irestore.models.conditioning import Conditioning
from irestore.registry import list_samplers

torch.set_num_threads(1)

CONFIG = SDEConfig(T=100, max_sigma=50 / 255, schedule="cosine", eps=0.005)
SHAPE = (1, 3, 6, 7)


class Reference:
    """IR-SDE written out from the equations, in float64 NumPy."""

    def __init__(self, T: int, lam: float, eps: float, s: float = 0.008):
        f = [math.cos(((n / (T + 2)) + s) / (1 + s) * math.pi / 2) ** 2 for n in range(T + 1)]
        theta = np.array([0.0] + [1 - f[n] / f[0] for n in range(1, T + 1)])
        dt = -math.log(eps) / theta[1:].sum()
        self.theta_bar = np.cumsum(theta) * dt
        self.T, self.lam = T, lam

    def grid(self, steps: int) -> list[int]:
        return [int(np.rint(self.T - i * self.T / steps)) for i in range(steps + 1)]

    def decay(self, t: int) -> float:
        return math.exp(-self.theta_bar[t])

    def sigma_bar(self, t: int) -> float:
        return self.lam * math.sqrt(1 - self.decay(t) ** 2)

    def x0(self, x, mu, eps, t):
        return mu + (x - mu - self.sigma_bar(t) * eps) / self.decay(t)

    def posterior(self, x, x0, mu, t, s):
        """x_s | x_t, x_0 from x_s | x_0 ~ N(μ + c(x_0 − μ), λ²(1 − c²)) and
        x_t | x_s ~ N(μ + a(x_s − μ), λ²(1 − a²))."""
        a, c = math.exp(-(self.theta_bar[t] - self.theta_bar[s])), self.decay(s)
        prior_var, step_var = self.lam**2 * (1 - c**2), self.lam**2 * (1 - a**2)
        precision = 1 / prior_var + a**2 / step_var
        mean = (c * (x0 - mu) / prior_var + a * (x - mu) / step_var) / precision
        return mu + mean, math.sqrt(1 / precision)

    def euler_mean_std(self, x, mu, eps, t, s):
        """Reverse-time SDE dx = [θ(μ − x) − σ² ∇log p] dt + σ dw̄, σ² = 2λ²θ, one step back over
        θ·dt = θ̄_t − θ̄_s, with ∇log p = −ε / σ̄_t."""
        delta = self.theta_bar[t] - self.theta_bar[s]
        score = -eps / self.sigma_bar(t)
        return x - delta * (mu - x) + 2 * self.lam**2 * delta * score, math.sqrt(2 * self.lam**2 * delta)


def network(x, mu, t: int, T: int):
    """A fixed nonlinear noise predictor (NumPy or torch) whose output depends on x, μ and t."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return lib.tanh(3 * x - 2 * mu) + 0.5 * math.sin(t / T * math.pi) * x


def _torch_network(x, mu, t, cond):
    return network(x, mu, int(t[0]), CONFIG.T)


def _draws(seed: int, count: int) -> list[np.ndarray]:
    """The standard-normal draws a sampler takes from its generator, in order (the samplers' contract:
    float32 draws from the given CPU generator)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(SHAPE, generator=g, dtype=torch.float32).double().numpy() for _ in range(count)]


def reference_sample(name: str, ref: Reference, mu: np.ndarray, steps: int, seed: int) -> np.ndarray:
    grid = ref.grid(steps)
    z = iter(_draws(seed, len(grid)))
    x = mu + ref.lam * next(z)
    for t, s in itertools.pairwise(grid):
        eps = network(x, mu, t, ref.T)
        if name == "euler":
            mean, std = ref.euler_mean_std(x, mu, eps, t, s)
            x = mean - std * next(z) if s > 0 else mean  # the sign of a symmetric draw is a convention
            continue
        x0 = ref.x0(x, mu, eps, t)
        if s == 0:
            x = x0
        elif name == "posterior":
            mean, std = ref.posterior(x, x0, mu, t, s)
            x = mean + std * next(z)
        else:  # ddim: x_s on the marginal around x̂_0 with the same ε
            x = mu + ref.decay(s) * (x0 - mu) + ref.sigma_bar(s) * eps
    return x


REFERENCES = ("euler", "posterior", "ddim")
STOCHASTIC = {"euler": True, "posterior": True, "ddim": False}


def _no_cond() -> Conditioning:
    return Conditioning(torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 4))


def _mu(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.9, SHAPE)


def test_every_registered_sampler_has_a_reference():
    assert set(list_samplers()) == set(REFERENCES) == set(STOCHASTIC)


@pytest.mark.parametrize("steps", [1, 3, 10])
@pytest.mark.parametrize("name", sorted(list_samplers()))
def test_each_sampler_follows_the_reference_trajectory(name, steps):
    ref, mu = Reference(CONFIG.T, CONFIG.max_sigma, CONFIG.eps), _mu()
    expected = reference_sample(name, ref, mu, steps, seed=5)
    out = sample(_torch_network, torch.from_numpy(mu).float(), MeanRevertingSDE(CONFIG), _no_cond(), steps,
                 torch.Generator().manual_seed(5), sampler=name)
    # float32 arithmetic against float64: the states are O(1), a wrong step is off by far more
    np.testing.assert_allclose(out.double().numpy(), expected, atol=2e-4, rtol=0)


def test_the_reference_schedule_is_the_one_irestore_uses():
    ref, sde = Reference(CONFIG.T, CONFIG.max_sigma, CONFIG.eps), MeanRevertingSDE(CONFIG)
    np.testing.assert_allclose(sde._theta_bar.numpy(), ref.theta_bar, rtol=1e-12, atol=1e-15)
    assert ref.decay(CONFIG.T) == pytest.approx(CONFIG.eps, rel=1e-12)
    assert sde.timesteps(7) == ref.grid(7)


@pytest.mark.parametrize("name", sorted(list_samplers()))
def test_each_step_draws_from_the_right_conditional_distribution(name):
    """One step T -> T/2 of each sampler on 24,000 pixels: the state after it, standardised by the
    reference's conditional mean and std given x_T, is N(0, 1) for a stochastic sampler and 0 for
    a deterministic one."""
    shape = (1, 3, 80, 100)
    ref = Reference(CONFIG.T, CONFIG.max_sigma, CONFIG.eps)
    mu = np.random.default_rng(1).uniform(0.1, 0.9, shape)
    g = torch.Generator().manual_seed(9)
    x_T = mu + ref.lam * torch.randn(shape, generator=torch.Generator().manual_seed(9), dtype=torch.float32).double().numpy()
    states = []
    sample(_torch_network, torch.from_numpy(mu).float(), MeanRevertingSDE(CONFIG), _no_cond(), 2, g, sampler=name,
           callback=lambda i, total, t, x: states.append(x.double().numpy()) if i == 0 else None)
    t, s = ref.grid(2)[:2]
    eps = network(x_T, mu, t, ref.T)
    if name == "euler":
        mean, std = ref.euler_mean_std(x_T, mu, eps, t, s)
    elif name == "posterior":
        mean, std = ref.posterior(x_T, ref.x0(x_T, mu, eps, t), mu, t, s)
    else:
        mean, std = mu + ref.decay(s) * (ref.x0(x_T, mu, eps, t) - mu) + ref.sigma_bar(s) * eps, 0.0
    residual = states[0] - mean
    if not STOCHASTIC[name]:
        assert np.abs(residual).max() < 2e-4
        return
    z = residual / std
    n = z.size
    assert abs(z.mean()) < 4 / math.sqrt(n), z.mean()
    assert z.var() == pytest.approx(1.0, abs=4 * math.sqrt(2 / n)), z.var()


class RejectFloat64(TorchDispatchMode):
    """A stand-in for a device without float64 (Apple's MPS): any float64 tensor in any op fails."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        for value in (*args, *kwargs.values(), *(out if isinstance(out, (tuple, list)) else (out,))):
            if isinstance(value, torch.Tensor) and value.dtype == torch.float64:
                raise TypeError(f"{func}: float64 tensor on a device without float64")
        return out


def test_an_sde_for_mps_keeps_float32_tables_and_elsewhere_float64():
    assert MeanRevertingSDE.for_device(CONFIG, torch.device("mps")).dtype == torch.float32
    assert MeanRevertingSDE.for_device(CONFIG, "cpu").dtype == torch.float64
    assert MeanRevertingSDE.for_device(CONFIG, "cuda").dtype == torch.float64


@pytest.mark.parametrize("prediction", ["noise", "x0", "direct"])
@pytest.mark.parametrize("name", sorted(list_samplers()))
def test_sampling_on_a_device_without_float64_never_makes_a_float64_tensor(name, prediction):
    sde = MeanRevertingSDE.for_device(CONFIG, "mps")
    mu = torch.from_numpy(_mu()).float()
    exact = sample(_torch_network, mu, MeanRevertingSDE(CONFIG), _no_cond(), 4, torch.Generator().manual_seed(2),
                   sampler=name, prediction=prediction)
    with RejectFloat64():
        out = sample(_torch_network, mu, sde, _no_cond(), 4, torch.Generator().manual_seed(2), sampler=name,
                     prediction=prediction)
    assert torch.allclose(out, exact, atol=1e-4)


def test_training_losses_on_a_device_without_float64_never_make_a_float64_tensor():
    sde = MeanRevertingSDE.for_device(CONFIG, "mps")
    g = torch.Generator().manual_seed(0)
    x0, mu = torch.rand(SHAPE, generator=g), torch.rand(SHAPE, generator=g)
    t, noise = torch.randint(1, CONFIG.T + 1, (1,), generator=g), torch.randn(SHAPE, generator=g)
    with RejectFloat64():
        xt = sde.forward_sample(x0, mu, t, noise)
        loss = sde.ml_loss(noise, xt, x0, mu, t)
        recovered = sde.x0_from_noise(xt, mu, noise, t)
    assert torch.isfinite(loss) and torch.allclose(recovered, x0, atol=1e-4)

