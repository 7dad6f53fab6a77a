"""Offline without the weights: one line naming the model, the expected path and the fetch command, before any load."""

from __future__ import annotations

import pytest
from lrbench_openclip.adapter import load_openclip
from lrbench_openclip.plugin import openclip_check

from lrbench.weights import WeightsMissing


def test_missing_weights_offline_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsMissing) as err:
        load_openclip("ViT-B-32", pretrained="openai", cache_dir=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(
        "openclip:ViT-B-32/openai: weights timm/vit_base_patch32_clip_224.openai/"
    )
    assert str(tmp_path / "models--timm--vit_base_patch32_clip_224.openai") in msg
    assert "hf download timm/vit_base_patch32_clip_224.openai open_clip_model.safetensors" in msg
    (finding,) = openclip_check(id="ViT-B-32/openai", cache_dir=str(tmp_path))
    assert finding.level == "error" and finding.message in msg


def test_check_ignores_random_init_and_reports_a_missing_checkpoint(tmp_path):
    assert openclip_check(id="ViT-B-32/random") == []
    (finding,) = openclip_check(id=f"ViT-B-32@{tmp_path / 'x.pt'}")
    assert finding.level == "error" and "does not exist" in finding.message
