"""LSNet as a backbone (timm's features_only) and with a projection head: reference outputs, checkpoints,
feature_info, input sizes, errors."""

import json
import math
from pathlib import Path

import pytest
import torch

from lsnet_deploy import reparameterize
from lsnet_deploy.errors import UsageError
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, create_model, load_model
from lsnet_deploy.models.backbone import LSNetBackbone, freeze_token_grids

from ..conftest import (ARTIST, CONFORMANCE, DENSE, SMALL_BACKBONE as SMALL, needs_artist, needs_dense,
                       relative_error)

TOLERANCE = 1e-4  # relative to each reference output's largest magnitude (conformance READMEs)
DENSE_CASES = ["det_small_320x448", "det_small_512x512", "det_from_cls_lsnet_t_384x576"]


def _dense_model(case: str) -> LSNetBackbone:
    if case.startswith("det_small"):
        return load_model(DENSE / "det_small.pth", features_only=True)
    # LSNet-T loaded the way the reference detection code's init_weights loads a classification checkpoint
    return load_model(CONFORMANCE / "lsnet_t.pth", features_only=True, bias_mode="matrix")


@pytest.fixture(scope="module")
def dense_models() -> dict:
    cache = {}

    def get(case: str) -> tuple[LSNetBackbone, dict]:
        if case not in cache:
            cache[case] = (_dense_model(case), torch.load(DENSE / f"{case}.io.pt", weights_only=True))
        return cache[case]
    return get


@needs_dense
@pytest.mark.parametrize("fused", [False, True], ids=["built", "fused"])
@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_backbone_reproduces_the_reference_detection_code(dense_models, case, fused):
    model, io = dense_models(case)
    if fused:
        model = reparameterize(model)
    for form in EXPORTABLE_SKA_FORMS:
        model.set_ska(form)
        with torch.no_grad():
            outputs = model(io["input"])
        assert len(outputs) == 4
        for stage, (out, ref) in enumerate(zip(outputs, io["outputs"])):
            assert out.shape == ref.shape
            assert relative_error(out, ref) <= TOLERANCE, (form, stage)


@needs_dense
def test_detector_checkpoint_loads_its_backbone_and_reports_what_it_ignored():
    model = load_model(DENSE / "det_small.pth", features_only=True)
    assert "ignored 2 keys outside the backbone (neck: 1, bbox_head: 1)" in model.load_notes
    assert model.bias_mode == "matrix" and model.attention_grid == (14, 14)
    assert model.embed_dim == SMALL["embed_dim"] and model.depth == SMALL["depth"]


def _detector_checkpoint(tmp_path: Path, backbone: torch.nn.Module) -> Path:
    """An mmdetection-style checkpoint: the backbone under ``backbone.``, a neck and a head beside it."""
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({"neck.lateral_convs.0.conv.weight": torch.randn(8, 32, 1, 1),
                  "neck.fpn_convs.0.conv.weight": torch.randn(8, 8, 3, 3),
                  "bbox_head.retina_cls.weight": torch.randn(9, 8, 3, 3)})
    path = tmp_path / "retinanet_lsnet.pth"
    torch.save({"meta": {"mmdet_version": "2.28.2", "CLASSES": ["person"]}, "state_dict": state}, path)
    return path


def test_detector_checkpoint_with_unrelated_keys_loads_with_one_report_line(tmp_path):
    reference = create_model("lsnet", **SMALL, features_only=True, bias_mode="matrix", attention_grid=14).eval()
    for p in reference.parameters():
        torch.nn.init.normal_(p, std=0.1)
    model = load_model(_detector_checkpoint(tmp_path, reference), features_only=True)
    lines = [n for n in model.load_notes if n.startswith("ignored")]
    assert lines == ["ignored 3 keys outside the backbone (neck: 2, bbox_head: 1)"]
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        for got, want in zip(model(x), reference(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_detector_checkpoint_needs_features_only(tmp_path):
    backbone = create_model("lsnet", **SMALL, features_only=True, attention_grid=14)
    with pytest.raises(UsageError, match="features_only=True"):
        load_model(_detector_checkpoint(tmp_path, backbone))


def test_classification_checkpoint_loads_as_a_table_backbone(tiny_checkpoint):
    classifier = load_model(tiny_checkpoint, img_size=(160, 224))  # its bias resampled once, at load
    backbone = load_model(tiny_checkpoint, features_only=True, out_indices=(3,))
    assert backbone.bias_mode == "table" and any("head: 7" in n for n in backbone.load_notes)
    x = torch.randn(2, 3, 160, 224)
    with torch.no_grad():
        (last,) = backbone(x)
        torch.testing.assert_close(last, classifier.forward_features(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("out_indices", [(0, 4), (), (1, 1), (-5,)])
def test_out_indices_it_does_not_have_is_a_clear_error(out_indices):
    with pytest.raises(UsageError, match=r"out_indices .*(stages 0 to 3|twice)") as info:
        create_model("lsnet_t", features_only=True, out_indices=out_indices)
    assert "\n" not in str(info.value)


def test_feature_info_follows_timm():
    model = create_model("lsnet_t", features_only=True, out_indices=(1, -1)).eval()
    info = model.feature_info
    assert info.channels() == [128, 384] and info.reduction() == [16, 64]
    assert info.module_name() == ["blocks2", "blocks4"] and info.out_indices == (1, 3)
    assert info.get_dicts() == [{"num_chs": 128, "reduction": 16, "module": "blocks2", "index": 1},
                                {"num_chs": 384, "reduction": 64, "module": "blocks4", "index": 3}]
    assert "head.l.weight" not in model.state_dict()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 128, 160))  # rectangular, not the build size
    assert [tuple(m.shape) for m in maps] == [(1, 128, 8, 10), (1, 384, 2, 3)]


@pytest.mark.parametrize("mode", ["table", "matrix"])
def test_freezing_the_grid_for_export_keeps_the_outputs(mode):
    model = create_model("lsnet", **SMALL, features_only=True, bias_mode=mode, ska="hybrid").eval()
    for name, p in model.named_parameters():
        if "attention_biases" in name:
            torch.nn.init.normal_(p)
    x = torch.randn(1, 3, 128, 192)
    frozen = freeze_token_grids(reparameterize(model), x)
    assert not any(type(m).__name__ == "GridAttention" for m in frozen.modules())
    with torch.no_grad():
        for got, want in zip(frozen(x), model(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@needs_artist
@pytest.mark.parametrize("fused", [False, True], ids=["built", "fused"])
def test_artist_model_reproduces_logits_and_embedding(fused):
    model = load_model(ARTIST / "artist_small.pth", img_size=128)
    io = torch.load(ARTIST / "artist_small.io.pt", weights_only=True)
    assert set(model.state_dict()) == set(torch.load(ARTIST / "artist_small.pth", weights_only=True))
    assert model.feature_dim == 48 and model.num_classes == 7
    if fused:
        model = reparameterize(model)
    for form in EXPORTABLE_SKA_FORMS:
        model.set_ska(form)
        with torch.no_grad():
            assert relative_error(model(io["input"]), io["output"]) <= TOLERANCE, form
            assert relative_error(model(io["input"], return_features=True), io["features"]) <= TOLERANCE, form


@needs_artist
def test_kaloscope_layout_is_built_exactly():
    (name, layout), = json.loads((ARTIST / "artist_layout.json").read_text()).items()
    with torch.device("meta"):  # 183.6M parameters, not allocated
        model = create_model("lsnet_xl_artist_448", feature_dim=2048, num_classes=39261)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == layout
    counted = [shape for key, shape in layout.items() if not key.endswith(("attention_bias_idxs", "num_batches_tracked"))]
    assert sum(math.prod(shape) for shape in counted) == 183_619_753  # "183.6M parameters" (BN statistics included)


@needs_artist
def test_architecture_inference_names_the_artist_variant_and_its_projection():
    from lsnet_deploy.models import infer_config
    from lsnet_deploy.models.arch import matching_variant
    from lsnet_deploy.models.lsnet import attention_bias_index

    (_, layout), = json.loads((ARTIST / "artist_layout.json").read_text()).items()
    state = {k: torch.empty(shape, device="meta") for k, shape in layout.items() if not k.endswith("idxs")}
    state["blocks4.3.mixer.m.attention_bias_idxs"] = attention_bias_index(7, 7)  # 448 px: a 7x7 last grid
    config = infer_config(state)
    assert config["feature_dim"] == 2048 and config["num_classes"] == 39261
    assert config["embed_dim"] == [192, 384, 576, 768] and config["num_heads"][3] == 6
    assert config["img_size"] == (448, 448) and matching_variant(config) == "lsnet_xl_artist_448"


def test_artist_variants_are_listed():
    from lsnet_deploy.models import list_models

    assert set(list_models("*artist*")) == {"lsnet_t_artist", "lsnet_s_artist", "lsnet_b_artist", "lsnet_l_artist",
                                            "lsnet_xl_artist", "lsnet_xl_artist_448"}
    with torch.device("meta"):
        model = create_model("lsnet_l_artist", feature_dim=1024, num_classes=10)
    assert model.embed_dim == [160, 320, 480, 640] and model.projection[0].l.out_features == 1024
    assert model.head.l.in_features == 1024 and create_model("lsnet_t_artist").config["feature_dim"] is None
