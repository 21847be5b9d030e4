"""Re-parameterization: each block type fuses exactly, with randomized BatchNorm statistics.

Default BatchNorm statistics (mean 0, var 1, weight 1, bias 0) hide algebra mistakes, so every test
randomizes them first.
"""

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from lsnet_deploy import reparameterize
from lsnet_deploy.models import LSNet, create_model, load_model
from lsnet_deploy.models.layers import BN_Linear, Conv2d_BN, RepVGGDW
from lsnet_deploy.models.lsnet import Attention

TOL = dict(rtol=1e-5, atol=1e-5)


def randomize_batchnorms(module: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))
    return module.eval()


@pytest.mark.parametrize("module, shape", [
    (Conv2d_BN(8, 16, 3, 2, 1), (2, 8, 9, 9)),
    (Conv2d_BN(16, 16, 3, 1, 1, groups=16), (2, 16, 7, 7)),
    (RepVGGDW(16), (2, 16, 7, 5)),
    (BN_Linear(32, 10), (3, 32)),
])
def test_block_fuses_exactly(module, shape):
    module = randomize_batchnorms(module)
    x = torch.randn(shape)
    fused = reparameterize(module)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    with torch.no_grad():
        assert_close(fused(x), module(x), **TOL)


def test_attention_fuses_with_gathered_bias():
    attn = Attention(64, 16, 2, 2, resolution=(3, 4))
    with torch.no_grad():
        attn.attention_biases.normal_()
    attn = randomize_batchnorms(attn)
    fused = reparameterize(attn)
    assert fused.fused and fused.attention_bias.shape == (2, 12, 12)
    assert "attention_biases" not in dict(fused.named_parameters())
    x = torch.randn(2, 64, 3, 4)
    with torch.no_grad():
        assert_close(fused(x), attn(x), **TOL)


@pytest.mark.parametrize("distillation", [False, True])
def test_whole_model_fuses_and_original_is_untouched(distillation):
    model = randomize_batchnorms(create_model("lsnet", embed_dim=[16, 32, 48, 64], depth=[1, 2, 3, 4],
                                              num_heads=[2, 2, 2, 2], num_classes=10, img_size=128,
                                              distillation=distillation))
    before = copy.deepcopy(model.state_dict())
    fused = reparameterize(model)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert_close(fused(x), model(x), **TOL)
    assert not hasattr(fused, "head_dist") and isinstance(fused.head, nn.Linear)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # only the two kinds of normalization without a fuse rule remain
    kinds = {type(m) for m in fused.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))}
    assert kinds == {nn.BatchNorm2d, nn.GroupNorm}


def test_fused_state_dict_round_trips_through_load_model(tmp_path, tiny_checkpoint):
    model = load_model(tiny_checkpoint, img_size=128)
    fused = reparameterize(model)
    path = tmp_path / "fused.pth"
    torch.save(fused.state_dict(), path)
    loaded = load_model(path, img_size=128)  # a bare state dict: tiny's 2x2 grid fits 96 and 128
    assert loaded.fused and isinstance(loaded, LSNet)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x), fused(x))


def test_fuse_is_idempotent(tiny_checkpoint):
    fused = reparameterize(load_model(tiny_checkpoint, img_size=128))
    again = reparameterize(fused)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(again(x), fused(x))
