"""The ERUNet layers, rewritten for speed, against the formulas written out plainly here:
same values and gradients, in NCHW and in channels_last."""

import pytest
import torch
import torch.nn.functional as F

from irestore.models.layers import GRN, EfficientRestorationBlock, LinearAttention

torch.set_num_threads(1)


def _formats(x):
    return [x, x.contiguous(memory_format=torch.channels_last)]


def plain_linear_attention(m: LinearAttention, x):
    """Per head and per image, with explicit loops over the heads."""
    b, c, h, w = x.shape
    normed = F.layer_norm(x.permute(0, 2, 3, 1), (c,), m.norm.weight, m.norm.bias, m.norm.eps)  # B,H,W,C
    qkv = torch.einsum("bhwc,oc->bhwo", normed, m.to_qkv.weight[:, :, 0, 0]).reshape(b, h * w, 3, m.heads, m.head_dim)
    outs = []
    for head in range(m.heads):
        q = qkv[:, :, 0, head].softmax(dim=-1) * m.head_dim**-0.5  # B,N,d: softmax over the head's channels
        k = qkv[:, :, 1, head].softmax(dim=1)  # softmax over positions
        v = qkv[:, :, 2, head]
        context = k.transpose(1, 2) @ v  # B,d,d
        outs.append(q @ context)  # B,N,d
    out = torch.cat(outs, dim=-1) @ m.to_out.weight[:, :, 0, 0].t() + m.to_out.bias
    return x + out.reshape(b, h, w, c).permute(0, 3, 1, 2)


def plain_grn(m: GRN, x):
    norms = x.square().sum(dim=(2, 3), keepdim=True).sqrt()
    scaled = norms / (norms.mean(dim=1, keepdim=True) + m.eps)
    return m.gamma * (x * scaled) + m.beta + x


def _randomise(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module


def _check_values_and_gradients(module, reference, x, *extra, atol=1e-5):
    for inp in _formats(x):
        a = inp.detach().clone().requires_grad_(True)
        b = inp.detach().clone().requires_grad_(True)
        out, expected = module(a, *extra), reference(module, b, *extra)
        torch.testing.assert_close(out, expected, atol=atol, rtol=1e-4)
        weights = torch.randn_like(expected)
        grads = torch.autograd.grad((out * weights).sum(), [a, *module.parameters()])
        expected_grads = torch.autograd.grad((expected * weights).sum(), [b, *module.parameters()])
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g, e, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("heads,head_dim", [(4, 16), (2, 8)])
def test_linear_attention_matches_the_per_head_formula(heads, head_dim):
    m = _randomise(LinearAttention(12, heads, head_dim)).double()
    x = torch.randn(2, 12, 7, 9, dtype=torch.float64)
    _check_values_and_gradients(m, plain_linear_attention, x, atol=1e-9)


def test_grn_matches_the_formula_including_its_gradient():
    m = _randomise(GRN(10)).double()
    x = torch.randn(3, 10, 6, 5, dtype=torch.float64)
    _check_values_and_gradients(m, plain_grn, x, atol=1e-9)
    # an all-zero channel (dead after a ReLU/GELU) has norm 0: the gradient stays finite
    x[:, 2] = 0
    x.requires_grad_(True)
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_restoration_block_matches_the_formula():
    def plain_block(m, x, emb):
        h = m.norm(m.dwconv(x))
        scale, shift = m.modulation(emb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = m.pw_project(plain_grn(m.grn, F.gelu(m.pw_expand(h))))
        return x + m.layer_scale * h

    m = _randomise(EfficientRestorationBlock(8, 16, kernel_size=5, expansion=2)).double()
    x = torch.randn(2, 8, 11, 10, dtype=torch.float64)
    _check_values_and_gradients(m, plain_block, x, torch.randn(2, 16, dtype=torch.float64), atol=1e-9)


def test_layers_keep_channels_last_and_bf16():
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    m = LinearAttention(16).to(memory_format=torch.channels_last)
    assert m(x).is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
        grn = GRN(16)(x.bfloat16())
    assert torch.isfinite(out).all() and grn.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), m(x), atol=0.1, rtol=0.05)
