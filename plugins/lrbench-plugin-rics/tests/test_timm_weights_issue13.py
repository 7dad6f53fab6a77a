"""``timm:ARCH.TAG`` with ``pretrained: true`` loads weights by name: once they are on this machine, what the name
resolves to is in the cell key, so weights replaced under the same name recompute (issue 13). Fake caches in tmp
folders; nothing is fetched."""

from __future__ import annotations

import pytest

from lrbench.plan import entry_identity
from lrbench.plugins import get_plugins
from lrbench.spec import Item


@pytest.fixture
def plugins(monkeypatch, tmp_path):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "rics")
    monkeypatch.setattr("lrbench.plugins._cached", None)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return get_plugins()


def _hub_weights(cache, repo: str, commit: str, data: bytes) -> None:
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "snapshots" / commit).mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    (root / "blobs" / commit).write_bytes(data)
    (root / "snapshots" / commit / "model.safetensors").symlink_to(root / "blobs" / commit)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)


def test_pretrained_hub_weights_key_the_cells(plugins, tmp_path):
    item = Item("models", "timm:resnet18.a1_in1k", {"pretrained": True})
    random_init = Item("models", "timm:resnet18.a1_in1k")
    assert "inputs" not in entry_identity(plugins, item)  # not downloaded yet: the name stands for it
    _hub_weights(tmp_path / "hub", "timm/resnet18.a1_in1k", "a" * 40, b"first")
    first = entry_identity(plugins, item)
    assert first["inputs"]["hub_snapshot"]["commit"] == "a" * 40
    _hub_weights(tmp_path / "hub", "timm/resnet18.a1_in1k", "b" * 40, b"second")  # re-released under the same tag
    second = entry_identity(plugins, item)
    assert second["inputs"]["hub_snapshot"]["commit"] == "b" * 40
    assert {k: v for k, v in first.items() if k != "inputs"} == {k: v for k, v in second.items() if k != "inputs"}
    assert "inputs" not in entry_identity(plugins, random_init)  # random-init reads no weights


def test_pretrained_url_weights_key_the_cells(plugins, tmp_path):
    """Weights timm fetches from a URL (no Hub copy) land in torch's hub cache under the URL's file name."""
    item = Item("models", "timm:gcvit_xxtiny.in1k", {"pretrained": True})
    assert "inputs" not in entry_identity(plugins, item)
    path = tmp_path / "torch" / "hub" / "checkpoints" / "gcvit_xxtiny_224_nvidia-d1d86009.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"first")
    first = entry_identity(plugins, item)
    path.write_bytes(b"second, longer")
    assert first["inputs"] != entry_identity(plugins, item)["inputs"]


def test_check_says_where_pretrained_weights_are_offline(plugins, tmp_path, monkeypatch):
    """validate / --dry-run (issue 18): missing offline with where timm looks and how to fetch; found once there."""
    from lrbench_rics.timm_models import TimmAdapter

    from lrbench.weights import WeightsMissing

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check = plugins.registries["models"]["timm"].check
    (hub,) = check(id="resnet18.a1_in1k", pretrained=True)
    assert hub.level == "error" and str(tmp_path / "hub" / "models--timm--resnet18.a1_in1k") in hub.message
    assert "`hf download timm/resnet18.a1_in1k model.safetensors`" in hub.message
    (url,) = check(id="gcvit_xxtiny.in1k", pretrained=True)
    target = tmp_path / "torch" / "hub" / "checkpoints" / "gcvit_xxtiny_224_nvidia-d1d86009.pth"
    assert url.level == "error" and f"copy the file to {target}" in url.message
    (tag,) = check(id="resnet18.no_such_tag", pretrained=True)
    assert tag.level == "error" and "Invalid pretrained tag (no_such_tag) for resnet18" in tag.message
    (unknown,) = check(id="no_such_net", pretrained=True)
    assert unknown.level == "error" and "no pretrained weights for 'no_such_net'" in unknown.message
    assert check(id="resnet18.a1_in1k") == []  # random init reads nothing
    with pytest.raises(WeightsMissing, match=r"^timm:resnet18.a1_in1k: weights timm/resnet18.a1_in1k/model"):
        TimmAdapter("resnet18.a1_in1k", pretrained=True)  # fails in one line before timm tries the Hub
    _hub_weights(tmp_path / "hub", "timm/resnet18.a1_in1k", "a" * 40, b"w")
    assert [f.level for f in check(id="resnet18.a1_in1k", pretrained=True)] == ["ok"]
