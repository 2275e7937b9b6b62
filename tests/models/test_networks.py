"""Every registered network builds, runs on odd sizes and survives save/load unchanged."""

import pytest
import torch

from irestore.diffusion.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint, read_info, save_checkpoint
from irestore.diffusion.sde import SDEConfig
from irestore.models.conditioning import Conditioning
from irestore.registry import create_network, list_networks, network_config
from network_helpers import _randomise, make_cond


@pytest.mark.parametrize("name", list_networks())
def test_registered_network_forward_odd_size_and_round_trip(name, tmp_path):
    net = _randomise(create_network(name))
    cfg = net.config
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    mu = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([42])
    cond = make_cond(cfg)
    with torch.inference_mode():
        out = net(x, mu, t, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()

    info = CheckpointInfo(network=cfg, sde=SDEConfig(), text_encoder="minilm", text_dim=cfg.text_dim, name=name)
    save_checkpoint(tmp_path / name, net, info)
    loaded, loaded_info = load_checkpoint(tmp_path / name)
    assert loaded_info == info
    with torch.inference_mode():
        assert torch.equal(loaded(x, mu, t, cond), out)
    # a lone .safetensors file carries its config in the header
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes((tmp_path / name / "model.safetensors").read_bytes())
    assert read_info(alone) == info


@pytest.mark.parametrize("name", ["erunet-tiny", "m3unet-tiny"])
def test_network_uses_text_time_degradation_and_respects_the_token_mask(name):
    net = _randomise(create_network(name))
    cfg = net.config
    x, mu = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    t = torch.tensor([30])
    base_cond = make_cond(cfg, seed=0)
    with torch.inference_mode():
        base = net(x, mu, t, base_cond)
        other = make_cond(cfg, seed=1)
        # each conditioning input matters on its own: the tokens (cross-attention), the pooled
        # sentence embedding and the degradation embedding (both through the fusion block)
        for changed in (
            Conditioning(other.text_tokens, base_cond.text_mask, base_cond.text_pooled, base_cond.degradation),
            Conditioning(base_cond.text_tokens, base_cond.text_mask, other.text_pooled, base_cond.degradation),
            Conditioning(base_cond.text_tokens, base_cond.text_mask, base_cond.text_pooled, other.degradation),
        ):
            assert not torch.allclose(base, net(x, mu, t, changed), atol=1e-6)
        assert not torch.allclose(base, net(x, mu, torch.tensor([80]), base_cond))  # time matters
        # padding tokens hidden by the mask do not change the result
        padded = Conditioning(
            torch.cat([base_cond.text_tokens, 100 * torch.randn(1, 3, cfg.text_dim)], 1),
            torch.cat([base_cond.text_mask, torch.zeros(1, 3, dtype=torch.bool)], 1),
            base_cond.text_pooled,
            base_cond.degradation,
        )
        assert torch.allclose(base, net(x, mu, t, padded), atol=1e-5)
        # pooled-only text (one token) is accepted
        pooled = Conditioning(base_cond.text_pooled[:, None], torch.ones(1, 1, dtype=torch.bool), base_cond.text_pooled, base_cond.degradation)
        assert net(x, mu, t, pooled).shape == x.shape


@pytest.mark.parametrize("name", ["erunet-tiny", "m3unet-tiny"])
def test_a_missing_degradation_embedding_is_the_learned_vector_per_sample(name):
    net = _randomise(create_network(name))
    x, mu, t = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24), torch.tensor([30])
    cond = make_cond(net.config).repeat(2)
    other = torch.randn(2, net.config.degradation_dim)
    with_text = lambda degradation, present=None: Conditioning(cond.text_tokens, cond.text_mask, cond.text_pooled, degradation, present)
    with torch.inference_mode():
        absent = net(x, mu, t, with_text(None))
        # marked absent: whatever embedding the row carries is ignored
        torch.testing.assert_close(net(x, mu, t, with_text(other, torch.tensor([False, False]))), absent)
        assert not torch.allclose(net(x, mu, t, with_text(other)), absent, atol=1e-6)  # present rows are used
        mixed = net(x, mu, t, with_text(cond.degradation, torch.tensor([True, False])))
        torch.testing.assert_close(mixed[0], net(x, mu, t, with_text(cond.degradation))[0])
        torch.testing.assert_close(mixed[1], absent[1])
        net.fusion.absent_degradation.add_(1.0)  # the vector is what an absent embedding means
        assert not torch.allclose(net(x, mu, t, with_text(None)), absent, atol=1e-6)
    assert net.fusion.absent_degradation.requires_grad  # learned, not a constant


def test_a_checkpoint_saved_before_the_learned_vector_restores_as_it_did(tmp_path):
    """Older checkpoints fed zeros for a missing embedding; loaded through the production path
    they get the projection of zeros as their "no embedding" vector, so outputs are unchanged."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    net = _randomise(create_network("erunet-tiny"))
    folder = save_checkpoint(tmp_path / "old", net, CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=net.config.text_dim))
    path = str(folder / "model.safetensors")
    with safe_open(path, "pt") as file:
        metadata = file.metadata()
    weights = load_file(path)
    del weights["fusion.absent_degradation"]
    save_file(weights, path, metadata=metadata)
    loaded, _ = load_checkpoint(folder)
    x, mu, t, cond = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24), torch.tensor([30]), make_cond(net.config)
    zeros = Conditioning(cond.text_tokens, cond.text_mask, cond.text_pooled, torch.zeros(1, net.config.degradation_dim))
    absent = Conditioning(cond.text_tokens, cond.text_mask, cond.text_pooled, None)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x, mu, t, absent), net(x, mu, t, zeros), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loaded(x, mu, t, cond), net(x, mu, t, cond))


def test_m3unet_gives_one_output_per_scale_and_a_direct_regressor_ignores_the_state():
    net = _randomise(create_network("m3unet-tiny", depth=3, encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1), text_levels=(0, 2)))
    x, mu = torch.rand(1, 3, 37, 53), torch.rand(1, 3, 37, 53)
    cond = make_cond(net.config)
    with torch.inference_mode():
        outs = net(x, mu, torch.tensor([5]), cond, scales=True)
        assert [tuple(o.shape[-2:]) for o in outs] == [(37, 53), (19, 27), (10, 14)]  # ceil(size / 2^level)
        assert torch.equal(outs[0], net(x, mu, torch.tensor([5]), cond))
    net.zero_output()
    with torch.inference_mode():
        assert all(float(o.abs().max()) == 0 for o in net(x, mu, torch.tensor([5]), cond, scales=True))
    direct = _randomise(create_network("m3unet-tiny", uses_state=False))
    assert direct.intro.in_channels == 3
    with torch.inference_mode():
        a = direct(x, mu, torch.tensor([0]), make_cond(direct.config))
        assert torch.equal(a, direct(torch.rand_like(x), mu, torch.tensor([0]), make_cond(direct.config)))


def test_multiscale_l1_compares_each_scale_with_the_pooled_target():
    from irestore.training.tasks import multiscale_l1

    mu, gt = torch.zeros(1, 1, 4, 4), torch.arange(16.0).reshape(1, 1, 4, 4)
    exact = [gt.clone(), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]])]  # 2x2 block means of gt
    assert float(multiscale_l1(exact, mu, gt)) == 0
    off = [gt + 1, exact[1]]  # full scale off by 1 everywhere: weight 1 of 1.5 in total
    assert abs(float(multiscale_l1(off, mu, gt)) - 1 / 1.5) < 1e-6
    coarse_off = [gt, exact[1] - 3]  # the half scale off by 3: weight 0.5
    assert abs(float(multiscale_l1(coarse_off, mu, gt)) - 1.5 / 1.5) < 1e-6


def test_paper_config_matches_the_paper():
    cfg = network_config("erunet-paper")
    assert (cfg.width, cfg.depth, cfg.encoder_blocks, cfg.decoder_blocks, cfg.middle_blocks) == (
        64, 4, (2, 2, 2, 2), (1, 1, 1, 1), 2
    )
    with pytest.raises(KeyError, match="unknown network"):
        network_config("nope")


def test_corrupt_or_foreign_checkpoints_fail_clearly(tmp_path):
    net = create_network("erunet-tiny")
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=net.config.text_dim)
    folder = save_checkpoint(tmp_path / "ck", net, info)
    (folder / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not an irestore restorer checkpoint"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        load_checkpoint(folder)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(tmp_path / "missing")
