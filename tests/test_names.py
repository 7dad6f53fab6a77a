"""One naming rule for registered names: spec names are kebab-case (old underscore spellings still read, as the same
entry and the same cell), metric names are identifiers; a plugin breaking the rule is refused at registration."""

from __future__ import annotations

import pytest

from lrbench import LrbenchError, hookimpl
from lrbench.plugins import Plugins
from lrbench.registry import NAME_RULES, check_name, spelling
from lrbench.runner import run_spec
from lrbench.spec import SpecError, validate


class BadDegradation:
    @hookimpl
    def register_degradations(self, register):
        register("my_blur", lambda sigma: None, "a blur with an underscore")


class BadMetric:
    @hookimpl
    def register_metrics(self, register):
        register("top-1", lambda outputs, dataset: 0.0, "a metric that is not a column name")


def test_a_plugin_registering_a_bad_name_is_refused_naming_plugin_name_and_rule():
    with pytest.raises(LrbenchError) as exc:
        Plugins(load_entry_points=False, extra=[(BadDegradation(), "blurry")])
    msg = str(exc.value)
    assert "'blurry'" in msg and "'my_blur'" in msg and "kebab-case" in msg and "'my-blur'" in msg
    with pytest.raises(LrbenchError, match=r"plugin 'counter' registers metric 'top-1'.*identifier"):
        Plugins(load_entry_points=False, extra=[(BadMetric(), "counter")])


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("degradations", "gaussian-blur", True),
        ("methods", "face/bt-m", True),
        ("models", "lr0fm:OpenCLIP-ViT-L/14 (laion2b_s32b_b82k)", True),  # a variant is the family's own
        ("models", "toy-clip", True),
        ("degradations", "gaussian_blur", False),
        ("datasets", "Stanford-Cars", False),
        ("methods", "face//bt", False),
        ("tasks", "zero-shot-", False),
        ("metrics", "mean_per_class", True),
        ("metrics", "Gamma", True),  # LR0.FM's capitals
        ("metrics", "1top", False),
        ("metrics", "face-acc", False),
    ],
)
def test_the_rule_per_kind(kind, name, ok):
    if ok:
        check_name(kind, name, "p")
    else:
        with pytest.raises(LrbenchError, match="naming rule"):
            check_name(kind, name, "p")


def test_every_installed_plugin_follows_the_rule():
    plugins = Plugins()  # a bad name would have raised; also no plugin recorded a naming error
    assert not [i.error for i in plugins.info.values() if i.error and "naming rule" in i.error]
    for kind, registry in plugins.registries.items():
        for name in registry.names():
            assert NAME_RULES[kind][0].fullmatch(name), (kind, name)


def test_old_underscore_spellings_find_the_kebab_case_entry(plugins):
    assert spelling("gaussian_blur") == "gaussian-blur"
    assert spelling("openclip:ViT-B-32/laion2b_s34b_b79k") == "openclip:ViT-B-32/laion2b_s34b_b79k"
    degradations = plugins.degradations
    assert degradations["gaussian_blur"] is degradations["gaussian-blur"]
    assert degradations.canonical("gaussian_blur") == "gaussian-blur" and degradations.canonical("nope_x") == "nope_x"
    assert plugins.datasets.canonical("stanford_cars") == "stanford-cars"
    assert plugins.metrics.canonical("mean_per_class") == "mean_per_class"  # metric names are not respelled
    with pytest.raises(LrbenchError, match="unknown metric 'mean-per-class'"):
        plugins.metrics.resolve("mean-per-class")


SPEC = {"name": "n", "models": ["tiny"], "datasets": [{"name": "toyworld", "n": 6}], "batch_size": 6}


def test_old_and_new_spelling_are_one_cell_and_one_row(plugins, tmp_path, caplog):
    """``gaussian_blur@2`` is the cell ``gaussian-blur@2``: same key, same label, computed once, one row."""
    with caplog.at_level("WARNING", logger="lrbench"):
        old = run_spec(
            {**SPEC, "conditions": ["hr", "gaussian_blur@2"]}, tmp_path / "a", plugins=plugins, cache_dir=tmp_path / "c"
        )
    assert "'gaussian_blur' is the old spelling of 'gaussian-blur'" in caplog.text
    assert sorted(set(old["condition"])) == ["gaussian-blur@2", "hr"]
    assert set(old.loc[old["condition"] == "gaussian-blur@2", "degradation"]) == {"gaussian-blur"}
    assert len(old.attrs["computed"]) == 2
    new = run_spec(
        {**SPEC, "conditions": ["hr", "gaussian-blur@2"]}, tmp_path / "b", plugins=plugins, cache_dir=tmp_path / "c"
    )
    assert new.attrs["computed"] == []  # nothing recomputed: the old spelling cached the same cells
    assert new[["condition", "metric", "value"]].equals(old[["condition", "metric", "value"]])
    with pytest.raises(SpecError, match=r"duplicate condition"):
        validate({**SPEC, "conditions": ["gaussian_blur@2", "gaussian-blur@2"]}, plugins, check_datasets=False)


def test_old_spelling_of_a_dataset_names_it_as_registered(plugins):
    resolved = validate({**SPEC, "datasets": ["stanford_cars"], "conditions": ["hr"]}, plugins, check_datasets=False)
    assert (resolved.datasets[0].name, resolved.datasets[0].label) == ("stanford-cars", "stanford-cars")
    labelled = validate(
        {**SPEC, "datasets": [{"name": "stanford_cars", "label": "my_cars"}]}, plugins, check_datasets=False
    )
    assert (labelled.datasets[0].name, labelled.datasets[0].label) == ("stanford-cars", "my_cars")
