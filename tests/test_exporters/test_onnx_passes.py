"""Each ONNX Runtime graph rewrite keeps the model's outputs and removes the operators it targets."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lsnet_deploy.exporters.prepare import prepare_model
from lsnet_deploy.exporters.onnx_format import simplify, torch_to_onnx
from lsnet_deploy.exporters.onnx_passes import (batchnorm_to_conv, broadcast_mul_to_resize, global_pool,
                                                optimize_for_onnxruntime)
from lsnet_deploy.models import load_model

from ..conftest import conformance_case


@pytest.fixture(scope="module")
def exported():
    path, x, _ = conformance_case("tiny")
    model = prepare_model(load_model(path), "onehot_conv", fuse=True)
    proto = simplify(torch_to_onnx(model, torch.zeros(2, 3, 128, 128), 18, dynamic=False))
    return proto, x.numpy()


def run(proto, x):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def ops(proto):
    return [n.op_type for n in proto.graph.node]


@pytest.mark.parametrize("rewrite, gone, added", [
    (global_pool, "ReduceMean", "GlobalAveragePool"),
    (batchnorm_to_conv, "BatchNormalization", "Conv"),
    (broadcast_mul_to_resize, None, "Resize"),
])
def test_rewrite_keeps_outputs(exported, rewrite, gone, added):
    proto, x = exported
    before = run(proto, x)
    changed = copy.deepcopy(proto)
    count = rewrite(changed)
    assert count > 0
    onnx.checker.check_model(changed)
    if gone:
        assert gone not in ops(changed)
    assert ops(changed).count(added) == ops(proto).count(added) + count
    np.testing.assert_allclose(run(changed, x), before, rtol=1e-5, atol=1e-6)


def test_full_pipeline_counts(exported):
    proto, x = exported
    before = run(proto, x)
    changed = copy.deepcopy(proto)
    counts = optimize_for_onnxruntime(changed)
    # tiny has 1+1+2+2 RepVGG/SE blocks (global pools: 6 SE + 1 head), 2 LS blocks (BN after SKA)
    assert counts == {"global_pool": 7, "batchnorm_to_conv": 2, "broadcast_mul_to_resize": 6}
    np.testing.assert_allclose(run(changed, x), before, rtol=1e-5, atol=1e-6)
    mobile = copy.deepcopy(proto)
    assert "broadcast_mul_to_resize" not in optimize_for_onnxruntime(mobile, blocked_layout=False)


def test_batchnorm_after_a_conv_is_left_for_onnxruntime_to_fold():
    path, _, _ = conformance_case("tiny")
    unfused = prepare_model(load_model(path), "onehot_conv", fuse=False)
    proto = simplify(torch_to_onnx(unfused, torch.zeros(1, 3, 128, 128), 18, dynamic=False))
    bns = ops(proto).count("BatchNormalization")
    changed = copy.deepcopy(proto)
    assert batchnorm_to_conv(changed) == 2  # only LSConv's two, which follow SKA, not a Conv
    assert ops(changed).count("BatchNormalization") == bns - 2


def test_single_depthwise_attention_is_exact():
    from lsnet_deploy import reparameterize
    from lsnet_deploy.exporters.onnxruntime_forms import SingleDepthwiseAttention, rewrite_for_onnxruntime
    from lsnet_deploy.models.lsnet import Attention

    path, x, _ = conformance_case("tiny")
    fused = reparameterize(load_model(path))
    rewritten = rewrite_for_onnxruntime(fused)
    kinds = [type(m) for m in rewritten.modules()]
    assert SingleDepthwiseAttention in kinds and Attention not in kinds
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), fused(x), rtol=1e-5, atol=1e-6)
