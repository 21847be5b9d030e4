"""Every named variant has exactly the reference's state-dict keys and shapes."""

import json

import pytest

from lsnet_deploy.models import create_model, list_models

from ..conftest import CONFORMANCE

LAYOUT = json.loads((CONFORMANCE / "state_dict_layout.json").read_text())


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_state_dict_layout_matches_reference(name):
    model = create_model(name)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == LAYOUT[name]


def test_list_models_names_all_six_variants():
    assert set(LAYOUT) <= set(list_models())
    assert list_models("lsnet_s*") == ["lsnet_s", "lsnet_s_distill", "lsnet_s_artist"]


def test_unknown_model_suggests_the_closest_name():
    from lsnet_deploy.errors import UsageError

    with pytest.raises(UsageError, match="did you mean 'lsnet_t'"):
        create_model("lsnet-t")


def test_custom_configuration_and_overrides():
    model = create_model("lsnet", embed_dim=[16, 32, 48, 64], depth=[1, 1, 1, 2], num_heads=[2, 2, 2, 2],
                         num_classes=7, img_size=96)
    assert model.num_classes == 7 and model.img_size == (96, 96)
    model = create_model("lsnet_t", num_classes=5)
    assert model.head.l.out_features == 5
