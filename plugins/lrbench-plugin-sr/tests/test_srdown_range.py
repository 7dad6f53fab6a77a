"""srdown declares its valid range: validate refuses a bad factor with the key path and the range (issue 13), and an
image smaller than the factor fails its cell with a message instead of an empty tensor."""

from __future__ import annotations

import pytest
import torch
from lrbench_sr.quality import SRDown

from lrbench.plugins import get_plugins
from lrbench.registry import LrbenchError
from lrbench.spec import SpecError, validate


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "sr,openclip")
    monkeypatch.setattr("lrbench.plugins._cached", None)
    return get_plugins()


@pytest.mark.parametrize(
    "condition, says",
    [
        ("srdown@0", "greater than or equal to 1"),
        ("srdown@-4", "greater than or equal to 1"),
        ("srdown@2.5", "valid integer"),
        ({"name": "srdown", "factor": "four"}, "valid integer"),
    ],
)
def test_bad_factors_are_refused_with_key_path_and_range(plugins, condition, says):
    spec = {"models": ["toy-clip"], "datasets": [{"name": "toyworld", "n": 4}], "conditions": ["hr", condition]}
    with pytest.raises(SpecError) as exc:
        validate(spec, plugins)
    problems = dict(exc.value.problems)
    assert says in problems["conditions[1].factor"], problems


def test_factor_larger_than_the_image_is_an_error_naming_the_size():
    assert SRDown(4).tensor(torch.rand(1, 3, 9, 13)).shape == (1, 3, 2, 3)  # cropped to 8 x 12, then 1/4
    with pytest.raises(LrbenchError, match=r"srdown@8: a 5x4 image has no pixel left at 1/8"):
        SRDown(8).tensor(torch.rand(1, 3, 4, 5))
