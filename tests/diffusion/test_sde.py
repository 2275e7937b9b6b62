"""The IR-SDE math checked against independent computations."""

import itertools
import math

import numpy as np
import pytest
import torch
from test_sampler_reference import Reference

from irestore.diffusion.sampling import sample
from irestore.diffusion.sde import MeanRevertingSDE, SDEConfig
from irestore.models.conditioning import Conditioning

torch.set_default_dtype(torch.float32)


def _images(seed=0, shape=(1, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64)
    mu = (x0 + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x0, mu


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_schedule_reaches_stationarity(schedule):
    sde = MeanRevertingSDE(SDEConfig(schedule=schedule))
    assert math.exp(-float(sde.theta_bar(sde.T))) == pytest.approx(sde.config.eps, rel=1e-9)
    assert float(sde.sigma_bar(sde.T)) == pytest.approx(sde.lam, rel=1e-4)
    assert float(sde.theta_bar(0)) == 0.0
    assert torch.all(torch.diff(sde._theta_bar) >= 0)


@pytest.mark.parametrize("t", [5, 30, 100])
def test_forward_marginal_matches_simulated_sde(t):
    """Simulate dx = θ(μ−x)dt + σ dw with fine Euler–Maruyama substeps and compare the
    Monte Carlo mean/variance with the closed-form marginal."""
    sde = MeanRevertingSDE(SDEConfig(T=100))
    n, substeps = 40000, 20
    g = torch.Generator().manual_seed(1)
    x0, mu = 0.8, 0.2
    x = torch.full((n,), x0, dtype=torch.float64)
    for i in range(1, t + 1):
        theta = float(sde._theta[i])
        h = sde.dt / substeps
        sigma = math.sqrt(2 * sde.lam**2 * theta)
        for _ in range(substeps):
            x = x + theta * (mu - x) * h + sigma * math.sqrt(h) * torch.randn(n, generator=g, dtype=torch.float64)
    # the closed form from an independent schedule (not the table under test)
    decay = Reference(sde.T, sde.lam, sde.config.eps).decay(t)
    expected_mean = mu + (x0 - mu) * decay
    expected_var = sde.lam**2 * (1 - decay**2)
    closed_mean = sde.marginal_mean(torch.full((1, 1, 1, 1), x0, dtype=torch.float64), torch.full((1, 1, 1, 1), mu, dtype=torch.float64), torch.tensor([t]))
    assert float(closed_mean) == pytest.approx(expected_mean, abs=1e-12)
    assert float(sde.sigma_bar(torch.tensor([t]))) ** 2 == pytest.approx(expected_var, rel=1e-9)
    stderr = math.sqrt(expected_var / n)
    assert abs(float(x.mean()) - expected_mean) < 5 * stderr + 2e-3
    assert float(x.var()) == pytest.approx(expected_var, rel=0.05)


def _oracle(x0):
    """A noise predictor that knows the clean image: ε = (x_t − m_t)/σ̄_t exactly."""
    sde_holder = {}

    def predict(x, mu, t, cond):
        sde = sde_holder["sde"]
        return (x - sde.marginal_mean(x0.to(x.dtype), mu, t)) / sde.marginal_std(t, x)

    return predict, sde_holder


def _no_cond():
    return Conditioning(torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 4))


@pytest.mark.parametrize("sampler,steps", [("euler", 100), ("posterior", 100), ("posterior", 3), ("ddim", 5)])
def test_reverse_with_true_noise_recovers_clean_image(sampler, steps):
    x0, mu = (v.float() for v in _images())
    predict, holder = _oracle(x0)
    holder["sde"] = sde = MeanRevertingSDE()
    out = sample(predict, mu, sde, _no_cond(), steps, torch.Generator().manual_seed(3), sampler=sampler)
    err = (out - x0).abs().max().item()
    # posterior/ddim land on x̂0 = x0 exactly; Euler–Maruyama over T=100 is accurate to discretisation error
    assert err < (0.03 if sampler == "euler" else 1e-4), err


def test_reverse_ode_step_with_true_score_recovers_clean_image():
    sde = MeanRevertingSDE()
    x0, mu = (v.float() for v in _images(2))
    predict, holder = _oracle(x0)
    holder["sde"] = sde
    x = sde.forward_sample(x0, mu, sde.T, torch.zeros_like(x0))  # the deterministic mean path
    for t in range(sde.T, 0, -1):
        tt = torch.tensor([t])
        x = sde.reverse_ode_step(x, mu, sde.score_from_noise(predict(x, mu, tt, None), tt), tt, tt - 1)
    assert (x - x0).abs().max().item() < 0.02


def test_ml_loss_prefers_true_noise():
    sde = MeanRevertingSDE()
    x0, mu = (v.float() for v in _images(4, (4, 3, 16, 16)))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(1, sde.T + 1, (4,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    xt = sde.forward_sample(x0, mu, t, noise)
    true_loss = sde.ml_loss(noise, xt, x0, mu, t)
    random_loss = sde.ml_loss(torch.randn(x0.shape, generator=g), xt, x0, mu, t)
    assert true_loss < 0.5 * random_loss


def test_optimal_reverse_state_is_the_gaussian_posterior_mean():
    """Check x*_{t-1} against the product-of-Gaussians formula computed from scratch."""
    sde = MeanRevertingSDE()
    x0, mu = _images(6)
    xt = x0 + 0.1
    t = torch.tensor([40])
    a = math.exp(-(float(sde.theta_bar(40)) - float(sde.theta_bar(39))))  # one-step transition
    m_prev = mu + (x0 - mu) * math.exp(-float(sde.theta_bar(39)))  # prior mean of x_{t-1}
    v_prev = sde.lam**2 * (1 - math.exp(-2 * float(sde.theta_bar(39))))
    v_step = sde.lam**2 * (1 - a**2)
    # x_t | x_{t-1} ~ N(μ + a(x_{t-1} − μ), v_step): combine with the prior of x_{t-1}
    precision = 1 / v_prev + a**2 / v_step
    expected = (m_prev / v_prev + a * (xt - mu + a * mu) / v_step) / precision
    got = sde.optimal_reverse_state(xt, x0, mu, t)
    assert torch.allclose(got, expected, atol=1e-10)


def test_timesteps_grid():
    sde = MeanRevertingSDE()
    assert sde.timesteps(1) == [100, 0]
    grid = sde.timesteps(7)
    assert grid[0] == 100 and grid[-1] == 0 and len(grid) == 8
    assert all(a > b for a, b in itertools.pairwise(grid))
    assert sde.timesteps(100) == list(range(100, -1, -1))
    with pytest.raises(ValueError):
        sde.timesteps(0)
    with pytest.raises(ValueError):
        SDEConfig(schedule="linear")


# --- golden slice: a 2-step posterior sampler vs an independent NumPy implementation ----

def _reference_posterior_2step(mu, noises, predict):
    """IR-SDE posterior sampling written from the paper's equations in float64 NumPy."""
    T, lam, eps, s = 100, 50 / 255, 0.005, 0.008
    steps = np.arange(T + 2)
    alpha_bar = np.cos(((steps / (T + 2)) + s) / (1 + s) * np.pi / 2) ** 2
    thetas = 1 - alpha_bar[1 : T + 1] / alpha_bar[0]
    dt = -np.log(eps) / thetas.sum()
    theta_bar = np.concatenate([[0.0], np.cumsum(thetas) * dt])
    x = mu + lam * noises[0]
    for (t, s_), z in zip([(100, 50), (50, 0)], [noises[1], None]):
        sig = lam * np.sqrt(1 - np.exp(-2 * theta_bar[t]))
        e = predict(x, mu)
        x0 = mu + (x - mu - sig * e) * np.exp(theta_bar[t])
        if s_ == 0:
            return x0
        a, c = np.exp(-(theta_bar[t] - theta_bar[s_])), np.exp(-theta_bar[s_])
        mean = mu + a * (1 - c**2) / (1 - (a * c) ** 2) * (x - mu) + c * (1 - a**2) / (1 - (a * c) ** 2) * (x0 - mu)
        std = lam * np.sqrt((1 - a**2) * (1 - c**2) / (1 - (a * c) ** 2))
        x = mean + std * z
    return x


def test_two_step_posterior_golden_slice():
    mu = torch.linspace(0, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)[:1]
    g = torch.Generator().manual_seed(1234)
    out = sample(lambda x, m, t, c: 0.9 * (x - m) / (50 / 255), mu, MeanRevertingSDE(), _no_cond(), 2, g)
    g = torch.Generator().manual_seed(1234)
    noises = [torch.randn(mu.shape, generator=g).double().numpy() for _ in range(2)]
    expected = _reference_posterior_2step(mu.double().numpy(), noises, lambda x, m: 0.9 * (x - m) / (50 / 255))
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    # the same slice written out, so a change in sampling or noise order cannot go unnoticed
    golden = np.array([0.05621189, -0.31497476, 0.00386506, -0.70168798])
    np.testing.assert_allclose(out[0, 0, 0].numpy(), golden, atol=1e-5)


@pytest.mark.parametrize("sampler,steps", [("posterior", 1), ("posterior", 4), ("ddim", 3), ("euler", 100)])
def test_an_x0_network_that_knows_the_clean_image_is_sampled_back_to_it(sampler, steps):
    x0, mu = (v.float() for v in _images())
    sde = MeanRevertingSDE()
    seen_times = []

    def predict_x0(x, mu_, t, cond):
        seen_times.append(int(t[0]))
        return x0 - mu_  # the network outputs the correction to the degraded image

    out = sample(predict_x0, mu, sde, _no_cond(), steps, torch.Generator().manual_seed(3), sampler=sampler, prediction="x0")
    assert len(seen_times) == steps and seen_times[0] == sde.T
    assert (out - x0).abs().max().item() < (0.03 if sampler == "euler" else 1e-4)


def test_noise_from_x0_inverts_x0_from_noise():
    sde = MeanRevertingSDE()
    x0, mu = (v.float() for v in _images(4, (2, 3, 8, 8)))
    t = torch.tensor([3, 80])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    xt = sde.forward_sample(x0, mu, t, noise)
    assert torch.allclose(sde.noise_from_x0(xt, mu, x0, t), noise, atol=1e-3)
    assert torch.allclose(sde.x0_from_noise(xt, mu, sde.noise_from_x0(xt, mu, x0, t), t), x0, atol=1e-5)


def test_unknown_prediction_is_refused():
    x0, mu = (v.float() for v in _images())
    with pytest.raises(ValueError, match="unknown prediction 'v'"):
        sample(lambda x, m, t, c: x, mu, MeanRevertingSDE(), _no_cond(), 2, prediction="v")
