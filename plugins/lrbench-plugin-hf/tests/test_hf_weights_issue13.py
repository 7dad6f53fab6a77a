"""``hf:`` entries read weights the spec names only by id: the cell key holds what the id resolves to (issue 13), and
``validate`` / ``--dry-run`` say when those weights are missing before a run starts (issue 18). Fake Hub caches in
tmp folders; nothing is fetched."""

from __future__ import annotations

import pytest

from lrbench.plan import entry_identity
from lrbench.plugins import get_plugins
from lrbench.spec import Item
from lrbench.weights import WeightsMissing

REPO = "org/tiny-clip"


def _fake_snapshot(cache, commit: str, weights: bytes, repo: str = REPO) -> None:
    """A Hugging Face cache entry as huggingface_hub lays it out: blobs, a snapshot of links, refs/main -> commit."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(exist_ok=True)
    for name, data in (("config.json", b"{}"), ("model.safetensors", weights)):
        blob = root / "blobs" / f"{name}-{commit[:8]}"
        blob.write_bytes(data)
        (snap / name).symlink_to(blob)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "hf")
    monkeypatch.setattr("lrbench.plugins._cached", None)
    return get_plugins()


def test_hub_id_is_keyed_by_the_local_snapshot_it_resolves_to(tmp_path, plugins):
    cache = tmp_path / "hub"
    item = Item("models", "hf:org/tiny-clip", {"cache_dir": str(cache)})
    other = Item("models", "hf:org/other", {"cache_dir": str(cache)})
    assert "inputs" not in entry_identity(plugins, item)  # not downloaded yet: the name stands for it
    _fake_snapshot(cache, "a" * 40, b"first weights")
    first = entry_identity(plugins, item)
    assert first["inputs"]["hub_snapshot"]["commit"] == "a" * 40
    assert set(first["inputs"]["hub_snapshot"]["files"]) == {"config.json", "model.safetensors"}
    assert entry_identity(plugins, item) == first  # same files, same key
    other_before = entry_identity(plugins, other)

    _fake_snapshot(cache, "b" * 40, b"newer weights")  # upstream pushed new weights under the same id
    second = entry_identity(plugins, item)
    assert second["inputs"]["hub_snapshot"]["commit"] == "b" * 40 and second != first
    assert entry_identity(plugins, other) == other_before  # another model's key does not move

    # the weights file overwritten in place (same commit, same blob name): its fingerprint still changes
    blob = (cache / "models--org--tiny-clip" / "snapshots" / ("b" * 40) / "model.safetensors").resolve()
    blob.write_bytes(b"hand-edited weights, longer")
    assert entry_identity(plugins, item)["inputs"] != second["inputs"]


def test_a_commit_revision_names_the_content(tmp_path, plugins):
    cache = tmp_path / "hub"
    _fake_snapshot(cache, "a" * 40, b"first weights")
    pinned = Item("models", "hf:org/tiny-clip", {"cache_dir": str(cache), "revision": "a" * 40})
    assert "inputs" not in entry_identity(plugins, pinned)  # the revision in the parameters is the key


def test_local_folder_is_keyed_by_its_files(tmp_path, plugins):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"first")
    item = Item("models", f"hf:{folder}")
    first = entry_identity(plugins, item)
    (folder / "model.safetensors").write_bytes(b"second")
    second = entry_identity(plugins, item)
    assert first["inputs"]["local_files"]["model.safetensors"] != second["inputs"]["local_files"]["model.safetensors"]
    assert first["inputs"]["local_files"]["config.json"] == second["inputs"]["local_files"]["config.json"]


def test_check_says_hub_weights_are_missing_offline(tmp_path, plugins, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "empty-hf-home" / "hub"
    check = plugins.registries["models"]["hf"].check
    (finding,) = check(id=REPO, cache_dir=str(cache))
    assert finding.level == "error"
    assert str(cache / "models--org--tiny-clip") in finding.message
    assert f"`hf download {REPO}`" in finding.message  # the whole repository: config and tokenizer too
    _fake_snapshot(cache, "a" * 40, b"weights")
    assert [f.level for f in check(id=REPO, cache_dir=str(cache))] == ["ok"]


def test_loading_missing_hub_weights_offline_fails_in_one_line(tmp_path, monkeypatch):
    from lrbench_hf.plugin import hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsMissing, match=r"^hf:org/tiny-clip: weights org/tiny-clip/model.safetensors are not"):
        hf(REPO, cache_dir=str(tmp_path))


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "holds no config.json"),
        (lambda d: (d.mkdir(), (d / "config.json").write_text("{}")), "holds no weights"),
    ],
)
def test_check_says_what_a_local_folder_lacks(tmp_path, plugins, make, says):
    folder = tmp_path / "saved"
    make(folder)
    (finding,) = plugins.registries["models"]["hf"].check(id=str(folder))
    assert finding.level == "error" and says in finding.message and str(folder) in finding.message


def test_validate_names_missing_hf_weights_before_a_run(tmp_path, plugins, monkeypatch):
    """`lrbench validate` offline with an empty HF_HOME: exit 2, each missing model with where it was looked for."""
    from click.testing import CliRunner

    from lrbench.cli import cli

    home = tmp_path / "empty-hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"models: [hf:{REPO}, hf:{tmp_path / 'no-such-folder'}]\ndatasets: [{{name: toyworld, n: 4}}]\n")
    out = CliRunner().invoke(cli, ["validate", str(spec)])
    assert out.exit_code == 2, out.output
    assert f"models[0] (hf:{REPO}): weights {REPO}/model.safetensors are not on this machine" in out.output
    assert str(home / "hub" / "models--org--tiny-clip") in out.output and f"hf download {REPO}`" in out.output
    assert f"models[1] (hf:{tmp_path / 'no-such-folder'}): local model folder" in out.output


@pytest.mark.parametrize("family", ["albef", "blip"])
def test_check_names_a_missing_checkpoint_and_tokenizer(tmp_path, plugins, monkeypatch, family):
    """albef:/path and blip:/path name their checkpoint in the id (no parameter the generic file check sees), and
    fetch their BERT tokenizer from the Hub by name: validate says when either is missing."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    check = plugins.registries["models"][family].check
    missing = tmp_path / "missing.pth"
    ckpt_missing, tok_missing = check(id=str(missing))
    assert ckpt_missing.level == "error" and f"checkpoint '{missing}' is not a file" in ckpt_missing.message
    assert tok_missing.level == "error"
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"weights")
    (tok,) = check(id=str(ckpt))
    assert (
        tok.level == "error" and "bert-base-uncased" in tok.message and "hf download bert-base-uncased`" in tok.message
    )
    _fake_snapshot(tmp_path / "hub", "a" * 40, b"", repo="bert-base-uncased")
    snap = tmp_path / "hub" / "models--bert-base-uncased" / "snapshots" / ("a" * 40)
    (snap / "vocab.txt").write_text("[PAD]\n")
    assert [f.level for f in check(id=str(ckpt))] == ["ok"]
    assert check(checkpoint=str(ckpt), tokenizer=str(tmp_path)) == []  # a local tokenizer folder: nothing to fetch
