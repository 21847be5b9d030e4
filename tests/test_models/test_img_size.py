"""Other input sizes: the attention bias table is resampled once at load time."""

import pytest
import torch

from lsnet_deploy import reparameterize
from lsnet_deploy.models import load_model
from lsnet_deploy.models.resize import resample_bias_table

from ..conftest import conformance_case


def test_own_size_is_bit_identical_to_loading_without_resampling():
    path, x, _ = conformance_case("tiny")
    plain, same = load_model(path), load_model(path, img_size=128)
    with torch.no_grad():
        assert torch.equal(plain(x), same(x))


@pytest.mark.parametrize("size", [256, (192, 256), 96, (160, 128)])
def test_other_sizes_run(size):
    path, _, _ = conformance_case("tiny")
    model = load_model(path, img_size=size)
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.img_size == (h, w)


def test_lsnet_t_at_256_and_192x256():
    path, _, _ = conformance_case("lsnet_t")
    for size in (256, (192, 256)):
        model = load_model(path, img_size=size)
        h, w = (size, size) if isinstance(size, int) else size
        with torch.no_grad():
            assert model(torch.randn(1, 3, h, w)).shape == (1, 1000)


def test_resampled_table_is_bicubic_and_identity_at_same_grid():
    table = torch.randn(3, 16)
    assert torch.equal(resample_bias_table(table, (4, 4), (4, 4)), table)
    grown = resample_bias_table(table, (4, 4), (7, 5))
    assert grown.shape == (3, 35)
    const = torch.full((2, 9), 0.25)
    torch.testing.assert_close(resample_bias_table(const, (3, 3), (6, 6)), torch.full((2, 36), 0.25))


def test_fused_checkpoint_can_be_resized_like_the_unfused_one(tmp_path):
    path, _, _ = conformance_case("tiny")
    fused = reparameterize(load_model(path))
    saved = tmp_path / "fused.pth"
    torch.save(fused.state_dict(), saved)
    a = reparameterize(load_model(path, img_size=192))
    b = load_model(saved, img_size=192)
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)
