"""Task choice: a function of (dataset task, kind of the model a method produces), each kind declared once."""

from __future__ import annotations

import pytest

from lrbench import hookimpl
from lrbench.builtin.tasks import Classification
from lrbench.methods import Method
from lrbench.models import ModelWrapper
from lrbench.plugins import Plugins
from lrbench.registry import LrbenchError
from lrbench.runner import run_spec

SPEC = {
    "name": "k",
    "models": ["tiny"],
    "datasets": [{"name": "toyworld", "n": 8}],
    "conditions": ["hr"],
    "batch_size": 8,
}


class AsClassifier(ModelWrapper):
    """The zero-shot model's class-text logits as a classifier head over the toy world's 8 shapes."""

    kind = "classifier"

    def classify(self, x):
        return self.inner.encode_image(x)[:, :8]


class ToClassifier(Method):
    """A method that turns any model into a classifier (as SR4IR does)."""

    name = "to-classifier"

    def produces(self, model_kind: str) -> str:
        return "classifier"

    def apply(self, model, ctx):
        return AsClassifier(model, self.identity())


class SecondClassification(Classification):
    name = "classification-2"


class Plugin:
    """conftest's tiny zero-shot class (registered as ``tiny``, its class declaring its kind) behind function
    factories that declare a kind, none, or a wrong one."""

    def __init__(self, tiny: type):
        self.tiny = tiny

    @hookimpl
    def register_methods(self, register):
        register("to-classifier", ToClassifier)

    @hookimpl
    def register_models(self, register):
        register("tiny-fn", lambda seed=0: self.tiny(seed=seed), "a function factory", kind="zero-shot")
        register("tiny-undeclared", lambda seed=0: self.tiny(seed=seed), "declares no kind")
        register("tiny-liar", lambda: self.tiny(), "declares the wrong kind", kind="classifier")


class Tie:
    @hookimpl
    def register_tasks(self, register):
        register("classification-2", SecondClassification)


@pytest.fixture
def kinds(plugins):
    """A plugin set factory: the test plugin, the kinds plugin above, and any extra plugins."""
    tiny = plugins.models["tiny"].factory
    test_plugin = plugins.pm.get_plugin("test-plugin")
    return lambda *extra: Plugins(
        load_entry_points=False, extra=[(test_plugin, "test-plugin"), (Plugin(tiny), "kinds"), *extra]
    )


def test_kind_changing_method_gets_the_task_of_the_kind_it_produces(kinds, tmp_path):
    plan = run_spec(dict(SPEC, methods=["none", "to-classifier"]), plugins=kinds(), dry_run=True, cache_dir=tmp_path)
    assert dict(zip(plan["method"], plan["task"])) == {"none": "zero-shot", "to-classifier": "classification"}
    results = run_spec(dict(SPEC, methods=["to-classifier"]), tmp_path / "run", plugins=kinds(), cache_dir=tmp_path)
    assert set(results["task"]) == {"classification"}
    assert set(results["n"]) == {8}


def test_a_function_factory_declares_its_kind_at_registration(kinds, tmp_path):
    plan = run_spec(dict(SPEC, models=["tiny-fn"]), plugins=kinds(), dry_run=True, cache_dir=tmp_path)
    assert list(plan["task"]) == ["zero-shot"]
    with pytest.raises(LrbenchError, match=r"model 'tiny-undeclared' of plugin 'kinds' declares no kind"):
        run_spec(dict(SPEC, models=["tiny-undeclared"]), plugins=kinds(), dry_run=True, cache_dir=tmp_path)


def test_a_tie_of_tasks_is_an_error_naming_both(kinds, tmp_path):
    spec = dict(SPEC, methods=["to-classifier"])
    with pytest.raises(LrbenchError) as exc:
        run_spec(spec, plugins=kinds((Tie(), "tie")), dry_run=True, cache_dir=tmp_path)
    message = str(exc.value)
    assert "several tasks evaluate a 'classifier' model on a 'classification' dataset" in message
    assert "classification (plugin lrbench.tasks)" in message and "classification-2 (plugin tie)" in message
    assert "'task'" in message
    plan = run_spec(
        dict(spec, task="classification-2"), plugins=kinds((Tie(), "tie")), dry_run=True, cache_dir=tmp_path
    )
    assert list(plan["task"]) == ["classification-2"]


def test_no_candidate_is_an_error(tmp_path):
    with pytest.raises(LrbenchError, match="no registered task evaluates a 'embedder' model on a 'classification'"):
        run_spec(
            dict(SPEC, models=[{"name": "timm:resnet18", "kind": "embedder"}]),
            plugins=Plugins(load_entry_points=False, extra=[(_rics(), "rics")]),
            dry_run=True,
            cache_dir=tmp_path,
        )


def _rics():
    return pytest.importorskip("lrbench_rics.plugin")


def test_a_declared_kind_the_model_does_not_have_is_an_error(kinds, tmp_path):
    with pytest.raises(LrbenchError, match="planned as a 'classifier' model .* built a 'zero-shot' one"):
        run_spec(dict(SPEC, models=["tiny-liar"]), tmp_path / "run", plugins=kinds(), cache_dir=tmp_path)


def test_the_entry_kind_follows_its_parameters():
    plugins = Plugins(load_entry_points=False, extra=[(_rics(), "rics")])
    entry, implied = plugins.models.resolve("timm:resnet18")
    assert entry.model_kind(implied, {}) == "classifier"
    assert entry.model_kind(implied, {"kind": "embedder"}) == "embedder"
