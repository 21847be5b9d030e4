"""The model reproduces the reference implementation's outputs, as built and fused, with every SKA form."""

import pytest
import torch

from lsnet_deploy import reparameterize
from lsnet_deploy.models import EXPORTABLE_SKA_FORMS, load_model

from ..conftest import CASES, CONFORMANCE, conformance_case, relative_error

TOLERANCE = 1e-4  # relative to the reference output's largest magnitude (conformance/README.md)


def case_size(case: str):
    """The input size of a conformance case, from its constructor arguments in cases.json (None for the
    named lsnet_t, whose 224 the loader assumes): the bare state dicts do not record it."""
    return CASES[case]["constructor"].get("img_size")


@pytest.mark.parametrize("case", list(CASES))
def test_loads_without_missing_or_unexpected_keys(case):
    path = CONFORMANCE / f"{case}.pth"  # the reference's bare state dict
    model = load_model(path, img_size=case_size(case))
    state = torch.load(path, weights_only=True)
    assert set(model.state_dict()) == set(state)


@pytest.mark.parametrize("fused", [False, True], ids=["built", "fused"])
@pytest.mark.parametrize("form", EXPORTABLE_SKA_FORMS)
@pytest.mark.parametrize("case", list(CASES))
def test_reproduces_reference_output(case, form, fused):
    path, x, expected = conformance_case(case)
    model = load_model(path, ska=form, img_size=case_size(case))
    if fused:
        model = reparameterize(model)
    with torch.no_grad():
        out = model(x)
    assert out.shape == expected.shape
    assert relative_error(out, expected) <= TOLERANCE


def test_constructor_arguments_of_the_reference_are_accepted():
    from lsnet_deploy.models import LSNet

    for name, case in CASES.items():
        if case["constructor"]:
            model = LSNet(**case["constructor"]).eval()
            x = torch.randn(case["input_shape"])
            assert model(x).shape == tuple(case["output_shape"])
