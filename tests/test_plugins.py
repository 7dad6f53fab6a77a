"""Registration: throwaway plugins, duplicate names, the family:id form, and the CLI listings."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lrbench import hookimpl
from lrbench.cli import cli
from lrbench.plugins import Plugins
from lrbench.registry import LrbenchError, UnknownNameError


class Dupe:
    @hookimpl
    def register_degradations(self, register):
        register("bicubic", lambda size: None, "a second bicubic")


def test_duplicate_name_names_both_plugins():
    with pytest.raises(LrbenchError) as exc:
        Plugins(load_entry_points=False, extra=[(Dupe(), "dupe-plugin")])
    assert "lrbench.degradations" in str(exc.value) and "dupe-plugin" in str(exc.value)


class Family:
    @hookimpl
    def register_models(self, register):
        register("fam", lambda id, scale=1: ("built", id, scale), "a family", accepts_id=True)


def test_family_id_form_passes_id():
    p = Plugins(load_entry_points=False, extra=[(Family(), "fam")])
    assert p.models.create("fam:ViT-B-32/openai", scale=2) == ("built", "ViT-B-32/openai", 2)
    with pytest.raises(UnknownNameError) as exc:
        p.models.create("famm:x")
    assert "fam" in str(exc.value)


class Raises:
    @hookimpl
    def register_metrics(self, register):
        raise RuntimeError("boom in hook")


def test_hook_that_raises_is_recorded_not_fatal():
    p = Plugins(load_entry_points=False, extra=[(Raises(), "raiser")])
    assert "boom in hook" in p.info["raiser"].error
    assert "top1" in p.metrics
    with pytest.raises(UnknownNameError) as exc:
        p.metrics.create("nope")
    assert "raiser" in str(exc.value)  # unknown-name errors point at plugins that failed


def test_disable_plugins_env(monkeypatch):
    monkeypatch.setenv("LRBENCH_DISABLE_PLUGINS", "example")
    p = Plugins()
    assert "example" not in p.info
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "")
    monkeypatch.delenv("LRBENCH_DISABLE_PLUGINS")
    p = Plugins()
    assert all(i.distribution == "lrbench" for i in p.info.values())


def test_list_command_json():
    result = CliRunner().invoke(cli, ["list", "degradations", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["bicubic"]["plugin"] == "lrbench.degradations"
    assert "SHORTER side" in rows["bicubic"]["description"]
