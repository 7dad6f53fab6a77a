"""shift@D and cyclic@D declare their valid ranges: validate refuses a bad value with the key path of the parameter
and the range, before anything runs or is cached (issue 13)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from lrbench_rics.shifts import CropShift, CyclicShift

from lrbench.cli import cli
from lrbench.plugins import get_plugins
from lrbench.spec import SpecError, validate


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "rics")
    monkeypatch.setattr("lrbench.plugins._cached", None)
    return get_plugins()


@pytest.mark.parametrize(
    "condition, path, says",
    [
        ("shift@-1", "conditions[1].max_shift", "greater than or equal to 0"),
        ("shift@17", "conditions[1].max_shift", "[0, 16] px, (resize - crop) // 2 = 16"),
        ("shift@1.5", "conditions[1].max_shift", "valid integer"),
        ({"name": "shift", "max_shift": 1, "crop": 300}, "conditions[1].crop", "[1, resize = 256]"),
        ({"name": "shift", "max_shift": 1, "crop": 0}, "conditions[1].crop", "greater than or equal to 1"),
        ({"name": "shift", "max_shift": 1, "resize": 100000, "crop": 224}, "conditions[1].resize", "allow_large"),
        ({"name": "shift", "max_shift": 1, "axes": "z"}, "conditions[1].axes", "'xy', 'x' or 'y'"),
        ("cyclic@-1", "conditions[1].max_shift", "greater than or equal to 0"),
        ("cyclic@113", "conditions[1].max_shift", "[0, 112] px"),
        ({"name": "cyclic", "max_shift": 1, "size": 0}, "conditions[1].size", "greater than or equal to 1"),
        ({"name": "cyclic", "max_shift": 1, "size": 5000}, "conditions[1].size", "allow_large"),
        ({"name": "cyclic", "max_shift": 1, "axes": "xyz"}, "conditions[1].axes", "'xy', 'x' or 'y'"),
        # the low-resolution step is checked too, under its own key path (cyclic has a 'size' of its own)
        ({"name": "cyclic", "max_shift": 1, "then": "bicubic@100000"}, "conditions[1].then.size", "[1, 4096]"),
        ({"name": "shift", "max_shift": 1, "then": "bicubic@0"}, "conditions[1].then.size", "greater than or equal"),
        ({"name": "shift", "max_shift": 1, "then": "nosuch@3"}, "conditions[1].then", "unknown degradation 'nosuch'"),
    ],
)
def test_out_of_range_shifts_are_refused_with_key_path_and_range(plugins, condition, path, says):
    spec = {"models": ["timm:resnet10t"], "datasets": [{"name": "toyworld", "n": 4}], "conditions": ["hr", condition]}
    with pytest.raises(SpecError) as exc:
        validate(spec, plugins)
    problems = dict(exc.value.problems)
    assert path in problems, problems
    assert says in problems[path]


def test_validate_exits_2_on_a_bad_shift(plugins, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [timm:resnet10t]\ndatasets: [{name: toyworld, n: 4}]\nconditions: [hr, cyclic@-1]\n")
    out = CliRunner().invoke(cli, ["validate", str(spec)])
    assert out.exit_code == 2 and "conditions[1].max_shift" in out.output, out.output


def test_the_largest_valid_shifts_and_the_opt_in_keep_their_labels():
    assert CropShift(16).offsets().shape == (33 * 33, 2)  # (256 - 224) // 2
    assert CyclicShift(16, size=32).offsets().shape == (33 * 33, 2)
    assert CyclicShift(1, size=5000, allow_large=True).condition == "cyclic@1(size=5000)"
    assert CropShift(2, resize=5000, crop=4990, allow_large=True).condition == "shift@2(resize=5000,crop=4990)"
