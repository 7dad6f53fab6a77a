"""``eva:`` entries load weights by name (an open_clip tag whose file is on the Hub, or a custom-code Hub repository):
what the name resolves to on this machine is in the cell key (issue 13), and ``validate`` / ``--dry-run`` say when the
weights are missing offline, where they were looked for and how to fetch them (issue 18). Fake Hub caches in tmp
folders; nothing is fetched."""

from __future__ import annotations

import pytest

from lrbench.plan import entry_identity
from lrbench.plugins import get_plugins
from lrbench.spec import Item
from lrbench.weights import WeightsMissing

B16_REPO = "timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k"


@pytest.fixture
def plugins(monkeypatch, tmp_path):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "eva")
    monkeypatch.setattr("lrbench.plugins._cached", None)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    return get_plugins()


def _snapshot(cache, repo: str, commit: str, filename: str, data: bytes) -> None:
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "snapshots" / commit).mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    (root / "blobs" / commit).write_bytes(data)
    (root / "snapshots" / commit / filename).symlink_to(root / "blobs" / commit)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)


@pytest.mark.parametrize(
    "item, repo, filename",
    [
        (Item("models", "eva:EVA02-B-16"), B16_REPO, "open_clip_model.safetensors"),  # the arch's default tag
        (Item("models", "eva:EVA02-B-16/merged2b_s8b_b131k"), B16_REPO, "open_clip_model.safetensors"),
        (Item("models", "eva:BAAI/EVA-CLIP-8B", {"trust_remote_code": True}), "BAAI/EVA-CLIP-8B", "model.safetensors"),
    ],
)
def test_weights_loaded_by_name_key_the_cells(plugins, tmp_path, item, repo, filename):
    other = Item("models", "eva:EVA02-L-14")
    assert "inputs" not in entry_identity(plugins, item)  # not downloaded yet: the name stands for it
    _snapshot(tmp_path / "hub", repo, "a" * 40, filename, b"first")
    other_before = entry_identity(plugins, other)
    first = entry_identity(plugins, item)
    assert first["inputs"]["hub_snapshot"]["commit"] == "a" * 40
    _snapshot(tmp_path / "hub", repo, "b" * 40, filename, b"second")  # new weights under the same name
    second = entry_identity(plugins, item)
    assert second["inputs"]["hub_snapshot"]["commit"] == "b" * 40
    assert {k: v for k, v in first.items() if k != "inputs"} == {k: v for k, v in second.items() if k != "inputs"}
    assert entry_identity(plugins, other) == other_before  # another model's key does not move


def test_a_checkpoint_file_is_keyed_by_the_plan_not_by_a_hub_lookup(plugins, tmp_path):
    ckpt = tmp_path / "eva.pt"
    ckpt.write_bytes(b"weights")
    ident = entry_identity(plugins, Item("models", "eva", {"arch": "EVA02-B-16", "checkpoint": str(ckpt)}))
    assert "inputs" not in ident and "sha256" in ident["params"]["checkpoint"]


@pytest.mark.parametrize(
    "params, folder, fetch",
    [
        ({"id": "EVA02-B-16"}, f"models--{B16_REPO.replace('/', '--')}", f"hf download {B16_REPO} "),
        (
            {"id": "BAAI/EVA-CLIP-8B", "trust_remote_code": True},
            "models--BAAI--EVA-CLIP-8B",
            "hf download BAAI/EVA-CLIP-8B`",
        ),
    ],
)
def test_check_says_weights_are_missing_offline(plugins, tmp_path, monkeypatch, params, folder, fetch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "empty-hf-home"
    check = plugins.registries["models"]["eva"].check
    (finding,) = check(**params, cache_dir=str(cache))
    assert finding.level == "error" and str(cache / folder) in finding.message and fetch in finding.message
    from lrbench_eva.plugin import eva

    with pytest.raises(WeightsMissing, match="are not on this machine"):  # the loader stops in one line too
        eva(**params, cache_dir=str(cache))


def test_check_finds_cached_weights(plugins, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _snapshot(tmp_path / "hub", B16_REPO, "a" * 40, "open_clip_model.safetensors", b"w")
    assert [f.level for f in plugins.registries["models"]["eva"].check(id="EVA02-B-16")] == ["ok"]


def test_a_repository_saved_in_a_folder_is_keyed_by_its_files(plugins, tmp_path):
    repo = tmp_path / "org" / "eva-repo"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text("{}")
    (repo / "model.safetensors").write_bytes(b"first")
    item = Item("models", f"eva:{repo}", {"trust_remote_code": True})
    first = entry_identity(plugins, item)["inputs"]["local_files"]
    (repo / "model.safetensors").write_bytes(b"second")
    second = entry_identity(plugins, item)["inputs"]["local_files"]
    assert first["config.json"] == second["config.json"] and first["model.safetensors"] != second["model.safetensors"]
    assert plugins.registries["models"]["eva"].check(id=str(repo), trust_remote_code=True) == []
