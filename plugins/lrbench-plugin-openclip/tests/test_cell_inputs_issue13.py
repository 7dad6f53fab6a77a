"""An ``openclip:ARCH/TAG`` model loads its weights by name from the Hugging Face cache: once downloaded, the file's
content hash is in the cell key, so a re-downloaded (changed) file recomputes instead of returning stale cells."""

from __future__ import annotations

import pytest

pytest.importorskip("open_clip")


def _fake_hf_cache(root, model_id: str, filename: str, blob: str):
    repo = root / f"models--{model_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / blob).write_bytes(b"weights " + blob.encode())
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True, exist_ok=True)
    link = snap / filename
    link.unlink(missing_ok=True)
    link.symlink_to(repo / "blobs" / blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)


def test_named_pretrained_weights_key_the_cells(tmp_path):
    import open_clip
    from lrbench_openclip.plugin import openclip_inputs

    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    model_id = cfg["hf_hub"].rstrip("/")
    cache = str(tmp_path)
    assert openclip_inputs(id="ViT-B-32/openai", cache_dir=cache) == {}  # not downloaded: the name stands for it
    _fake_hf_cache(tmp_path, model_id, "open_clip_model.safetensors", "a" * 64)
    first = openclip_inputs(id="ViT-B-32/openai", cache_dir=cache)
    assert first == {"pretrained_weights": "blob:" + "a" * 64}
    _fake_hf_cache(tmp_path, model_id, "open_clip_model.safetensors", "b" * 64)  # upstream replaced the file
    assert openclip_inputs(id="ViT-B-32/openai", cache_dir=cache) == {"pretrained_weights": "blob:" + "b" * 64}
    assert openclip_inputs(id="ViT-B-32/random") == {}


def test_hf_hub_models_key_the_cells_by_the_local_snapshot(tmp_path):
    from lrbench_openclip.plugin import openclip_inputs

    model_id = "org/tiny-openclip"
    assert openclip_inputs(id=f"hf-hub:{model_id}", cache_dir=str(tmp_path)) == {}  # not downloaded yet
    _fake_hf_cache(tmp_path, model_id, "open_clip_model.safetensors", "a" * 64)
    first = openclip_inputs(id=f"hf-hub:{model_id}", cache_dir=str(tmp_path))
    assert first["hub_snapshot"]["commit"] == "0" * 40
    _fake_hf_cache(tmp_path, model_id, "open_clip_model.safetensors", "b" * 64)  # the file replaced in the cache
    second = openclip_inputs(id=f"hf-hub:{model_id}", cache_dir=str(tmp_path))
    files = "open_clip_model.safetensors"
    assert first["hub_snapshot"]["files"][files].startswith("a" * 64)
    assert second["hub_snapshot"]["files"][files].startswith("b" * 64)
