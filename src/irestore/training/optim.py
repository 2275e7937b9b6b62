"""Optimiser, learning-rate schedule and exponential moving average of the weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(network: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices and kernels, never on biases and norm scales."""
    decay, no_decay = [], []
    for parameter in network.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


class WarmupCosine:
    """LR factor: linear warm-up from ~0 to 1 over `warmup` steps, then cosine down to
    `min_ratio` at `total` steps, flat afterwards. A class (not a lambda) so it is explicit
    what the scheduler's saved state does not contain: this is rebuilt from the config."""

    def __init__(self, warmup: int, total: int, min_ratio: float):
        self.warmup, self.total, self.min_ratio = warmup, max(total, 1), min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float) -> LambdaLR:
    return LambdaLR(optimizer, WarmupCosine(warmup, total, min_ratio))


class EMA:
    """A frozen copy of the network whose weights trail the trained ones:
    ema ← d·ema + (1−d)·w, with d ramped up as min(decay, (1+n)/(10+n)) so that short runs
    are not dominated by the random initialisation. Buffers (e.g. BatchNorm statistics)
    are copied, not averaged."""

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        decay = self.current_decay()
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in network.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - decay)
        for ema_buffer, buffer in zip(self.module.buffers(), network.buffers()):
            ema_buffer.copy_(buffer)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])
