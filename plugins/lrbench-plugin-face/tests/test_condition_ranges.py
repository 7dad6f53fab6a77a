"""face-lr and face-protocol declare their valid ranges: validate refuses a bad value with the key path of the
parameter and the range, before anything runs or is cached (issue 13)."""

from __future__ import annotations

import pytest

from lrbench.plugins import get_plugins
from lrbench.spec import SpecError, validate


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "face")
    monkeypatch.setattr("lrbench.plugins._cached", None)
    return get_plugins()


def _problems(plugins, condition) -> dict[str, str]:
    spec = {"models": ["face-iresnet:r18"], "datasets": [{"name": "toyfaces-pairs"}], "conditions": ["hr", condition]}
    with pytest.raises(SpecError) as exc:
        validate(spec, plugins)
    return dict(exc.value.problems)


@pytest.mark.parametrize(
    "condition, path, says",
    [
        ("face-lr@0", "conditions[1].size", "greater than or equal to 1"),
        ("face-lr@-4", "conditions[1].size", "greater than or equal to 1"),
        ("face-lr@16.5", "conditions[1].size", "valid integer"),  # was silently face-lr@16
        ("face-lr@nan", "conditions[1].size", "finite number"),
        ("face-lr@100000", "conditions[1].size", "[1, 4096]"),
        ({"name": "face-lr", "size": 16, "mode": "both"}, "conditions[1].mode", "'cross' or 'equal'"),
        ("face-protocol@medium", "conditions[1].range", "'low', 'mid', 'high' or 'all'"),
        ({"name": "face-protocol", "range": "low", "seed": -1}, "conditions[1].seed", "greater than or equal to 0"),
        ({"name": "face-protocol", "mode": "both"}, "conditions[1].mode", "'cross' or 'equal'"),
    ],
)
def test_out_of_range_face_conditions_are_refused_with_key_path_and_range(plugins, condition, path, says):
    problems = _problems(plugins, condition)
    assert path in problems, problems
    assert says in problems[path]


def test_protocol_file_resolutions_are_bounded(plugins, tmp_path):
    protocol = tmp_path / "lfw_low.csv"
    protocol.write_text("resolution\n7\n100000\n")
    problems = _problems(plugins, {"name": "face-protocol", "range": "low", "file": str(protocol)})
    assert "resolutions must be in [1, 4096] px, found 100000" in problems["conditions[1]"]


def test_in_range_face_conditions_keep_their_labels(plugins):
    deg = plugins.registries["degradations"]
    assert deg.create("face-lr", size=16).condition == "face-lr@16"
    assert deg.create("face-lr", size=7, mode="equal").condition == "face-lr@7(mode=equal)"
    assert deg.create("face-lr", size=5000, allow_large=True).condition == "face-lr@5000"  # the opt-in is no param
    assert set(deg.create("face-protocol", range="low").resolutions(1000).tolist()) == set(range(5, 11))  # 5-10 px
