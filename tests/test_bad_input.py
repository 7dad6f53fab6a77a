"""Bad input gets one clear line and exit status 2, never a traceback, a silent fallback or a wrong number (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lrbench.cli import cli
from lrbench.datasets import csv_dataset, imagefolder
from lrbench.registry import LrbenchError
from lrbench.spec import SpecError, load_spec_file, validate

GOOD = "models: [tiny]\ndatasets: [{name: toyworld, n: 4}]\nconditions: [hr]\n"


def _validate_cli(tmp_path, text: str | bytes):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(text.encode() if isinstance(text, str) else text)
    return CliRunner().invoke(cli, ["validate", str(spec)])


def _problems(spec, plugins):
    with pytest.raises(SpecError) as exc:
        validate(spec, plugins)
    return dict(exc.value.problems)


@pytest.mark.parametrize(
    "text, says",
    [
        (b"name: caf\xe9\n" + GOOD.encode(), "not UTF-8"),
        ("models: [tiny\ndatasets: [toyworld]\n", "not valid YAML"),
        ("models: [tiny]\nmodels: [other]\ndatasets: [toyworld]\n", "duplicate key 'models'"),
        ("models: &m [tiny]\ndatasets: *m\n", "anchors"),
        ("- models\n", "a spec is a mapping"),
    ],
)
def test_unreadable_specs_exit_2_with_one_line_naming_the_line(tmp_path, text, says):
    result = _validate_cli(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert "line " in result.output or "file" in result.output


def test_alias_bomb_is_refused_before_it_expands(tmp_path):
    # the classic "billion laughs": 9 levels of 9 aliases would expand to 9**9 strings
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    spec = tmp_path / "bomb.yaml"
    spec.write_text("\n".join(lines) + "\n" + GOOD)
    with pytest.raises(SpecError, match="anchors"):
        load_spec_file(spec)


def test_duplicate_keys_inside_entries_are_refused(tmp_path):
    spec = tmp_path / "dup.yaml"
    spec.write_text("models: [tiny]\ndatasets:\n  - {name: toyworld, n: 4, n: 400}\n")
    with pytest.raises(SpecError, match=r"duplicate key 'n' \(first at line 3\)"):
        load_spec_file(spec)


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", ""])
def test_run_name_must_stay_under_runs(plugins, name):
    problems = _problems({"name": name, "models": ["tiny"], "datasets": [{"name": "toyworld", "n": 4}]}, plugins)
    assert "name" in problems and "plain file name" in problems["name"]


@pytest.mark.parametrize(
    "condition, path, says",
    [
        ("bicubic@0", "conditions[1].size", "greater than or equal to 1"),
        ("bicubic@100000", "conditions[1].size", "[1, 4096]"),
        ("pixelate@0", "conditions[1].size", "greater than or equal to 1"),
        ("area@5000", "conditions[1].size", "allow_large"),
        ("jpeg@0", "conditions[1].quality", "greater than or equal to 1"),
        ("jpeg@101", "conditions[1].quality", "less than or equal to 100"),
        ("gaussian-blur@-1", "conditions[1].sigma", "greater than 0"),
        ("gaussian-blur@nan", "conditions[1].sigma", "finite"),
        ("noise@-0.5", "conditions[1].sigma", "greater than or equal to 0"),
        ("noise@nan", "conditions[1].sigma", "finite"),
    ],
)
def test_out_of_range_conditions_are_refused_with_key_path_and_range(plugins, condition, path, says):
    problems = _problems(
        {"models": ["tiny"], "datasets": [{"name": "toyworld", "n": 4}], "conditions": ["hr", condition]}, plugins
    )
    assert path in problems, problems
    assert says in problems[path]


def test_large_sizes_need_an_explicit_opt_in(plugins):
    spec = {
        "models": ["tiny"],
        "datasets": [{"name": "toyworld", "n": 4}],
        "conditions": [{"name": "bicubic", "size": 5000, "allow_large": True}],
    }
    resolved = validate(spec, plugins)
    deg = plugins.registries["degradations"].create("bicubic", **resolved.conditions[0].params)
    assert deg.size == 5000 and deg.condition == "bicubic@5000"  # the opt-in does not change the cell


def test_validate_cli_refuses_bad_condition_and_n_with_exit_2(tmp_path):
    result = _validate_cli(
        tmp_path, "models: [tiny]\ndatasets: [{name: toyworld, n: -1}]\nconditions: [hr, bicubic@100000]\n"
    )
    assert result.exit_code == 2
    assert "datasets[0].n" in result.output and "conditions[1].size" in result.output


@pytest.mark.parametrize("n", [0, -1])
def test_toyworld_n_below_one_is_refused(plugins, n):
    problems = _problems({"models": ["tiny"], "datasets": [{"name": "toyworld", "n": n}]}, plugins)
    assert "greater than or equal to 1" in problems["datasets[0].n"]


def test_duplicate_metric_names_are_kept_once(plugins):
    resolved = validate(
        {"models": ["tiny"], "datasets": [{"name": "toyworld", "n": 4}], "metrics": ["top1", "top1", "SAR"]}, plugins
    )
    assert [m.label for m in resolved.metrics] == ["top1", "SAR"]


# ---- csv / imagefolder ------------------------------------------------------------------------------------------------


def _csv_root(tmp_path, body: str):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text("path,label\n" + body)
    return tmp_path


@pytest.mark.parametrize(
    "body, kwargs, says",
    [
        ("a.png,cat\nb.png\nc.png,dog\n", {}, "line 3: expected 2 fields"),
        ("a.png,cat\nb.png,\nc.png,dog\n", {}, "line 3: empty label"),
        (
            "a.png,cat\nb.png,cow\nc.png,dog\n",
            {"classnames": ["cat", "dog"]},
            "line 3: label 'cow' is not in the class",
        ),
        ("a.png,0\nb.png,2\nc.png,1\n", {"classnames": ["cat", "dog"]}, "line 3: label 2 is outside the class list"),
        ("a.png,0\nb.png,-1\n", {}, "line 3: label -1 is outside the class list"),
        ("a.png,cat,x\n", {}, "line 2: expected 2 fields"),
    ],
)
def test_csv_dataset_bad_rows_are_errors_naming_the_row(tmp_path, body, kwargs, says):
    root = _csv_root(tmp_path, body)
    with pytest.raises(Exception, match=says):
        csv_dataset(str(root), **kwargs)


def test_csv_limit_below_one_is_refused_by_validate(plugins, tmp_path):
    root = _csv_root(tmp_path, "a.png,cat\nb.png,dog\n")
    problems = _problems({"models": ["tiny"], "datasets": [{"name": "csv", "root": str(root), "limit": -3}]}, plugins)
    assert "greater than or equal to 1" in problems["datasets[0].limit"]
    with pytest.raises(LrbenchError, match="limit must be >= 1"):
        csv_dataset(str(root), limit=0)


def test_16_bit_png_is_scaled_not_white(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    (tmp_path / "cls").mkdir()
    Image.fromarray(ramp).save(tmp_path / "cls" / "ramp.png")
    ds = imagefolder(str(tmp_path))
    rgb = np.asarray(ds.load(0))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    expected = np.round(ramp / 257).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert abs(rgb.mean() - 127.47) < 0.01  # PIL's own convert("RGB") clips it to a mean of 254.5


def test_float_image_outside_unit_range_is_refused_with_a_reason():
    from lrbench.datasets import to_rgb

    with pytest.raises(ValueError, match="cannot tell its scale"):
        to_rgb(Image.fromarray(np.full((4, 4), 7.5, dtype=np.float32)))
