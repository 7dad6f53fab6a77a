"""validate / --dry-run report what a run would meet, without loading or downloading anything."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lrbench import hookimpl, weights
from lrbench.builtin import catalogue
from lrbench.datasets import DatasetRootError
from lrbench.plugins import Plugins
from lrbench.preflight import preflight
from lrbench.registry import Finding
from lrbench.runner import Runner
from lrbench.spec import validate

from .conftest import TestPlugin, TinyZeroShot

FETCHES: list[str] = []


def hub_model(repo: str = "org/net", **_):
    """A model whose weights come from the Hub: its check asks the local Hub cache."""
    return TinyZeroShot()


def hub_check(repo: str = "org/net", **_):
    return [weights.hub_weights(repo, ["model.safetensors"])]


def fetching_dataset(root: str, download: bool = False):
    """A dataset that downloads into ``root`` when asked (records it) and is otherwise absent."""
    if download:
        FETCHES.append(root)
    raise DatasetRootError("fetching", root, "not downloaded yet", "root/CLASS/*.png")


class HubPlugin:
    @hookimpl
    def register_models(self, register):
        register("hubnet", hub_model, "weights from the Hub", check=hub_check)

    @hookimpl
    def register_datasets(self, register):
        register("fetching", fetching_dataset, "downloads when asked")


@pytest.fixture
def plugins():
    return Plugins(load_entry_points=False, extra=[(TestPlugin(), "test-plugin"), (HubPlugin(), "hub-plugin")])


def _hub_cache(root, repo: str, filename: str):
    """The layout huggingface_hub keeps: refs/main names a snapshot folder holding the file."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    snap = folder / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / filename).write_bytes(b"weights")
    return snap / filename


def test_hub_weights_found_download_or_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path = _hub_cache(tmp_path / "hub", "org/net", "model.safetensors")
    found = weights.hub_weights("org/net", ["model.safetensors"], cache_dir=str(tmp_path / "hub"))
    assert found == Finding("ok", f"org/net/model.safetensors found at {path}")
    monkeypatch.setattr(weights, "reachable", lambda host, *a, **k: True)
    online = weights.hub_weights("org/other", ["model.safetensors"], cache_dir=str(tmp_path / "hub"))
    assert online.level == "download" and str(tmp_path / "hub" / "models--org--other") in online.message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = weights.hub_weights("org/other", ["model.safetensors"], cache_dir=str(tmp_path / "hub"))
    assert missing.level == "error"
    assert "models--org--other" in missing.message and "hf download org/other model.safetensors" in missing.message
    with pytest.raises(weights.WeightsMissing, match=r"^hubnet: weights org/other/model.safetensors are not"):
        weights.require(missing, "hubnet")


def test_preflight_names_missing_weights_checkpoints_and_downloads(plugins, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {
        "models": [
            {"name": "hubnet", "repo": "lrbench-test/absent-net"},
            {"name": "hubnet", "label": "b", "weights_file": str(tmp_path / "no.pt")},
            "tiny",
        ],
        "datasets": [{"name": "fetching", "root": str(tmp_path / "data"), "download": True}],
    }
    found = {(p.path, p.finding.level): p.finding.message for p in preflight(validate(spec, plugins), plugins)}
    assert set(found) == {("models[0]", "error"), ("models[1]", "error"), ("datasets[0]", "download")}
    assert "hf download lrbench-test/absent-net model.safetensors" in found[("models[0]", "error")]
    assert f"weights_file: file '{tmp_path / 'no.pt'}' does not exist" == found[("models[1]", "error")]
    assert found[("datasets[0]", "download")].startswith("will download fetching")
    assert FETCHES == []


def test_dry_run_never_downloads(plugins, tmp_path):
    FETCHES.clear()
    lines: list[str] = []
    spec = {
        "models": ["tiny"],
        "datasets": [
            {"name": "fetching", "root": str(tmp_path / "data"), "download": True},
            {"name": "toyworld", "n": 12},
        ],
        "conditions": ["hr", "bicubic@16"],
    }
    table = Runner(spec, tmp_path / "run", plugins=plugins, cache_dir=tmp_path / "c", echo=lines.append).run(
        dry_run=True
    )
    assert FETCHES == [] and not (tmp_path / "run").exists()
    assert set(table["dataset"]) == {"toyworld"} and len(table) == 2
    assert any(line.startswith("download: datasets[0] (fetching): will download fetching") for line in lines)


def test_catalogue_preset_without_loader_or_plugin():
    (f,) = catalogue.check("M2-Encoder-0.4B")
    assert f.level == "error" and "has no loader in lrbench" in f.message


def test_validate_exits_2_on_what_the_run_would_fail(tmp_path, monkeypatch):
    from lrbench.cli import cli

    spec = tmp_path / "s.yaml"
    spec.write_text("models: [{name: toy-clip}, lr0fm:M2-Encoder-0.4B]\ndatasets: [{name: toyworld, n: 12}]\n")
    out = CliRunner().invoke(cli, ["validate", str(spec)])
    assert out.exit_code == 2, out.output
    assert "models[1] (lr0fm:M2-Encoder-0.4B): lr0fm:M2-Encoder-0.4B has no loader in lrbench" in out.output
