"""Validation: every problem reported with its key path, the bad value and the choices or closest match."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lrbench.cli import cli
from lrbench.spec import SpecError, validate


def _problems(spec, plugins):
    with pytest.raises(SpecError) as exc:
        validate(spec, plugins)
    return exc.value.problems, str(exc.value)


def test_unknown_names_report_key_path_and_closest_match(plugins):
    spec = {
        "models": ["tinny"],
        "datasets": [{"name": "toyworld"}, {"name": "toywrld"}],
        "conditions": ["hr", "bicubc@16"],
        "methods": ["nope"],
    }
    problems, text = _problems(spec, plugins)
    paths = {p for p, _ in problems}
    assert {"models[0]", "datasets[1]", "conditions[1]", "methods[0]"} <= paths
    assert "did you mean 'tiny'" in text and "did you mean 'toyworld'" in text and "did you mean 'bicubic'" in text
    assert "did you mean 'none'" in dict(problems)["methods[0]"]
    assert "Choices:" not in text  # close matches replace the list of every name


def test_unknown_name_lists_few_choices_and_names_a_failed_plugin():
    from lrbench.registry import MAX_CHOICES_SHOWN, UnknownNameError

    names = [f"lr0fm:model-{i}" for i in range(80)]
    msg = str(UnknownNameError("models", "zzz", names))
    shown = msg.split("Choices: ")[1].split(" ...")[0].split(", ")
    assert len(shown) == MAX_CHOICES_SHOWN and "and 68 more (lrbench list models)" in msg
    msg = str(UnknownNameError("models", "openclip:ViT-B-32/openai", names, {"openclip": "ImportError: no open_clip"}))
    assert msg.startswith(
        "model 'openclip:ViT-B-32/openai' comes from plugin 'openclip', which failed to load: ImportError: no open_clip"
    )


def test_unknown_key_wrong_type_and_bad_param(plugins):
    spec = {
        "models": ["tiny"],
        "datasets": [{"name": "toyworld", "n": "many", "splitt": "test"}],
        "conditions": ["hr"],
        "batchsize": 3,
    }
    problems, text = _problems(spec, plugins)
    assert "batchsize" in dict(problems) and "did you mean 'batch_size'" in dict(problems)["batchsize"]
    spec.pop("batchsize")
    problems, text = _problems(spec, plugins)
    d = dict(problems)
    assert "datasets[0].n" in d and "'many'" in d["datasets[0].n"]
    assert "datasets[0].splitt" in d and "did you mean 'split'" in d["datasets[0].splitt"]


def test_missing_dataset_root_names_the_path(plugins, tmp_path):
    missing = tmp_path / "nowhere"
    spec = {"models": ["tiny"], "datasets": [{"name": "toyworld"}, {"name": "imagefolder", "root": str(missing)}]}
    problems, text = _problems(spec, plugins)
    d = dict(problems)
    assert "datasets[1].root" in d and str(missing) in d["datasets[1].root"] and "<class name>" in d["datasets[1].root"]


def test_bad_type_of_top_level_key(plugins):
    problems, _ = _problems({"models": "tiny", "datasets": [{"name": "toyworld"}]}, plugins)
    assert problems[0][0].startswith("models")


def test_validate_cli_exit_status_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "bad.yaml"
    spec.write_text("models: [no-such-model]\ndatasets: [{name: toyworld, n: 4}]\nconditions: [hr, bicubic@16]\n")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "models[0]" in result.output and "no-such-model" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_yaml_cannot_construct_python_objects(tmp_path):
    spec = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    spec.write_text(f"models: !!python/object/apply:os.system ['touch {marker}']\ndatasets: [toyworld]\n")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code != 0 and not marker.exists()
    assert "not valid YAML" in result.output


def test_num_workers_auto_or_a_count(plugins):
    """`num_workers: auto` (the default, written so in spec.resolved.yaml) validates when written out; a count >= 0 too;
    a negative count is a spec error naming the key (it was a pydantic TypeError traceback)."""
    base = {"models": ["tiny"], "datasets": [{"name": "toyworld", "n": 4}], "conditions": ["hr"]}
    assert validate(dict(base, num_workers="auto"), plugins).spec.num_workers == "auto"
    assert validate(dict(base, num_workers=2), plugins).spec.num_workers == 2
    with pytest.raises(SpecError, match="num_workers"):
        validate(dict(base, num_workers=-1), plugins)
