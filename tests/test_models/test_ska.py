"""Every SKA formulation equals the reference definition, and none builds a tensor of rank above 5."""

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from lsnet_deploy.models.ska import EXPORTABLE_SKA_FORMS, SKA, SKA_FORMS, check_ska_form, ska_reference

SHAPES = [(1, 8, 5, 5), (2, 16, 7, 9), (3, 32, 14, 14), (2, 64, 1, 3), (4, 24, 11, 6)]


def direct_definition(x, w):
    """out[b,c,h,v] = sum_ij xpad[b,c,h+i,v+j] * w[b, c mod G, 3i+j, h, v], written as plainly as possible."""
    b, c, h, wd = x.shape
    groups = w.shape[1]
    xpad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    out = torch.zeros_like(x)
    for ch in range(c):
        for i in range(3):
            for j in range(3):
                out[:, ch] += xpad[:, ch, i:i + h, j:j + wd] * w[:, ch % groups, 3 * i + j]
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_form_matches_the_definition(shape):
    b, c, h, wd = shape
    x, w = torch.randn(shape), torch.randn(b, c // 8, 9, h, wd)
    assert_close(ska_reference(x, w), direct_definition(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", EXPORTABLE_SKA_FORMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_form_equals_the_reference(form, shape):
    b, c, h, wd = shape
    x, w = torch.randn(shape), torch.randn(b, c // 8, 9, h, wd)
    module = SKA(c, form)
    assert_close(module(x, w), ska_reference(x, w), rtol=1e-5, atol=1e-5)


class MaxRank(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.rank = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.rank = max(self.rank, t.dim())
        return out


@pytest.mark.parametrize("form", EXPORTABLE_SKA_FORMS)
def test_no_form_builds_a_tensor_above_rank_5(form):
    x, w = torch.randn(2, 32, 7, 7), torch.randn(2, 4, 9, 7, 7)
    module = SKA(32, form)
    with MaxRank() as probe:
        module(x, w)
    assert 4 <= probe.rank <= 5


#: the forms users pass to ``--ska`` (README, docs/ska_forms.md, scripts), written out here, not read from the
#: module: renaming or dropping one breaks those command lines, and this list says so
FORMS_USERS_TYPE = ("reference", "unfold_matmul", "onehot_conv", "shifted_slices", "banded_matmul", "hybrid",
                    "tap_slices", "hybrid_taps", "triton")


def test_the_forms_users_type_are_the_forms_there_are():
    assert sorted(SKA_FORMS) == sorted(FORMS_USERS_TYPE)
    # every form but the GPU-only Triton kernel exports
    assert sorted(EXPORTABLE_SKA_FORMS) == sorted(set(FORMS_USERS_TYPE) - {"triton"})
    for name in FORMS_USERS_TYPE:
        check_ska_form(name)  # accepted
    check_ska_form("auto")


def test_unknown_form_is_refused_with_the_choices():
    with pytest.raises(ValueError) as refused:
        check_ska_form("im2col")
    message = str(refused.value)
    assert message.startswith("unknown SKA form 'im2col'; choose one of: auto, "), message
    assert sorted(message.split("choose one of: ", 1)[1].split(", ")) == sorted(("auto",) + FORMS_USERS_TYPE)


def test_docs_describe_every_form():
    text = (Path(__file__).resolve().parents[2] / "docs" / "ska_forms.md").read_text()
    missing = [name for name in FORMS_USERS_TYPE if f"`{name}`" not in text]
    assert not missing, f"docs/ska_forms.md does not describe {missing}"


def test_docs_table_gives_each_formats_auto_form():
    from lsnet_deploy.exporters import available_formats, get_exporter

    text = (Path(__file__).resolve().parents[2] / "docs" / "ska_forms.md").read_text()
    rows = {}
    for line in text.split("\n## ")[0].splitlines():  # the table above the first section
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3 and "--int8" not in cells[0]:
            for name in cells[0].split(","):
                rows[name.strip(" `")] = cells[1].strip("`")
    assert rows == {name: get_exporter(name).ska_auto for name in available_formats()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton SKA kernel needs a CUDA GPU")
def test_triton_kernel_matches_reference_on_gpu():
    pytest.importorskip("triton")
    for shape in SHAPES:
        b, c, h, wd = shape
        x, w = torch.randn(shape, device="cuda"), torch.randn(b, c // 8, 9, h, wd, device="cuda")
        assert_close(SKA_FORMS["triton"](x, w), ska_reference(x, w), rtol=1e-5, atol=1e-5)
