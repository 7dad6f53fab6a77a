"""The LR0.FM model catalogue: its data against the paper, resolution through the registry, the example specs."""

from __future__ import annotations

import types
from collections import Counter
from pathlib import Path

import pytest
import yaml

import lrbench.plugins as plugins_mod
from lrbench import hookimpl
from lrbench.builtin import catalogue as cat
from lrbench.plugins import Plugins
from lrbench.registry import LrbenchError
from lrbench.spec import validate

ROOT = Path(__file__).resolve().parents[1]
LR0FM_DATASETS = [
    "imagenet",
    "imagenet-a",
    "imagenet-v2",
    "imagenet-r",
    "imagenet-sketch",
    "caltech101",
    "dtd",
    "food101",
    "sun397",
    "stanford-cars",
    "fgvc-aircraft",
    "oxford-pets",
    "flowers102",
    "eurosat",
    "ucf101",
]


def test_catalogue_is_table_1():
    presets = cat.catalogue()["models"]
    assert len(presets) == 66 and len({p["name"] for p in presets}) == 66
    # Table 1: #backbones per family
    assert Counter(p["family"] for p in presets) == {
        "CLIP": 9,
        "OpenCLIP": 8,
        "MetaCLIP": 8,
        "CLIPA": 7,
        "SigLIP": 8,
        "CoCa": 3,
        "M2-Encoder": 3,
        "ALBEF": 4,
        "BLIP": 8,
        "EVA-CLIP": 8,
    }
    assert {f: v["backbones"] for f, v in cat.catalogue()["families"].items()} == Counter(p["family"] for p in presets)
    for p in presets:
        if p["load"] is None:
            assert p["family"] == "M2-Encoder" and "pip" in p["unavailable"]
            continue
        assert p["load"]["plugin"].startswith("lrbench-plugin-") and p["load"]["model"] in (
            "openclip",
            "eva",
            "hf",
            "albef",
            "blip",
        )
        assert p["load"].get("id") or p["load"].get("needs") == ["checkpoint"]
        assert 0 < p["published"]["war16"] < p["published"]["sar16"] + 0.1 < 1.1


def test_parameter_counts_match_the_paper():
    """Counted from open_clip's configs; Table 10 gives CLIP's (M), Table 2 EVA-B/16's 149.7M."""
    paper = {
        "CLIP-RN50": 102,
        "CLIP-RN101": 120,
        "CLIP-RN50x4": 178,
        "CLIP-RN50x16": 291,
        "CLIP-RN50x64": 623,
        "CLIP-ViT-B/16": 150,
        "CLIP-ViT-B/32": 151,
        "CLIP-ViT-L/14": 428,
        "CLIP-ViT-L/14@336px": 428,
        "EVA-02-CLIP-B/16": 149.7,
    }
    for name, millions in paper.items():
        assert cat.preset(name)["params_m"] == pytest.approx(millions, abs=0.6), name
    # input sizes the paper lists as model-specific HR resolutions (224, 256, 336/378, 384, 512)
    sizes = {p["name"]: p["input_size"] for p in cat.catalogue()["models"]}
    assert sizes["SigLIP-ViT-B/16@512px"] == 512 and sizes["OpenCLIP-ViT-H/14-quickgelu@378px"] == 378
    assert sizes["EVA-02-CLIP-L/14@336px"] == 336 and sizes["CLIP-RN50x64"] == 448


def test_open_clip_tags_exist():
    open_clip = pytest.importorskip("open_clip")
    known = set(open_clip.list_pretrained())
    for p in cat.catalogue()["models"]:
        load = p["load"]
        if load and load["model"] in ("openclip", "eva") and not load["id"].startswith("BAAI/"):
            assert tuple(load["id"].split("/", 1)) in known, p["name"]


def test_aliases_accept_the_authors_spelling():
    assert cat.preset("EVA-02-CLIP-L/14+ ")["name"] == "EVA-02-CLIP-L/14@336px"
    assert cat.preset("MetaCLIP- ViT-G/14 (2.5B)")["load"]["id"] == "ViT-bigG-14-quickgelu/metaclip_fullcc"
    assert cat.preset("blip-vit-l/16  (129m + coco)")["load"]["id"] == "Salesforce/blip-itm-large-coco"
    with pytest.raises(LrbenchError, match="EVA-02-CLIP-B/16"):
        cat.preset("EVA-02-CLIP-B/61")


def _fake_families() -> tuple[types.SimpleNamespace, list]:
    """A throwaway plugin registering the openclip/eva/albef family names, recording how they are called."""
    calls: list = []

    def family(name):
        def factory(id=None, **params):
            calls.append((name, id, params))
            return (name, id, params)

        return factory

    @hookimpl
    def register_models(register):
        for name in ("openclip", "eva", "albef"):
            register(name, family(name), accepts_id=True)

    return types.SimpleNamespace(register_models=register_models), calls


def test_presets_resolve_through_the_registry(monkeypatch):
    fake, calls = _fake_families()
    monkeypatch.setattr(plugins_mod, "_cached", Plugins(load_entry_points=False, extra=[(fake, "fake")]))
    models = plugins_mod.get_plugins().models
    assert models.create("lr0fm:CLIP-ViT-B/32") == ("openclip", "ViT-B-32/openai", {})
    assert models.create("lr0fm:EVA-02-CLIP-B/16", precision="bf16") == (
        "eva",
        "EVA02-B-16/merged2b_s8b_b131k",
        {"precision": "bf16"},
    )
    assert models.create("lr0fm:EVA-CLIP-8B")[2] == {"trust_remote_code": True}
    assert models.create("lr0fm:MetaCLIP- ViT-B/16 (400M)")[1] == "ViT-B-16-quickgelu/metaclip_400m"  # family + alias
    assert models.create("lr0fm:ALBEF (4M)", checkpoint="/x/ALBEF_4M.pth") == (
        "albef",
        None,
        {"checkpoint": "/x/ALBEF_4M.pth"},
    )
    with pytest.raises(LrbenchError, match="ALBEF_4M.pth"):
        models.create("lr0fm:ALBEF (4M)")
    with pytest.raises(LrbenchError, match="pip install --find-links dist lrbench-plugin-hf"):
        models.create("lr0fm:BLIP-ViT-B/16 (129M + COCO)")  # the hf family is not installed in this plugin set
    with pytest.raises(LrbenchError, match="Ant-Multi-Modal-Framework"):
        models.create("lr0fm:M2-Encoder-1B")
    assert len(calls) == 5


def test_listing_info_says_who_can_load_each_preset(monkeypatch):
    monkeypatch.setattr(cat, "_installed_entry_points", lambda: {"eva"})
    entries = {}
    cat.register_models(
        register=lambda name, factory, description="", info=None, accepts_id=False, kind=None, check=None: (
            entries.__setitem__(name, (description, info, kind))
        )
    )
    assert len(entries) == 67 and entries["lr0fm"][1] == {"presets": 66, "available": 8}
    eva = entries["lr0fm:EVA-02-CLIP-E/14+"][1]
    assert eva["available"] and eva["loader"] == "eva:EVA02-E-14-plus/laion2b_s9b_b144k" and eva["params_m"] > 4000
    clip = entries["lr0fm:CLIP-RN50"][1]
    assert not clip["available"] and clip["installable_by"] == "lrbench-plugin-openclip"
    assert entries["lr0fm:M2-Encoder-10B"][1]["available"] is False
    assert entries["lr0fm:ALBEF (14M)"][1]["needs"] == ["checkpoint"]
    assert {kind for _, _, kind in entries.values()} == {"zero-shot"}  # the 66 LR0.FM backbones are all zero-shot


@pytest.mark.parametrize("name", ["lr0fm-full.yaml", "lr0fm-small.yaml"])
def test_example_specs_validate(name):
    data = yaml.safe_load((ROOT / "examples" / name).read_text())
    resolved = validate(data, Plugins(load_entry_points=False), source=name, check_datasets=False)
    names = [m.name for m in resolved.models]
    assert all(n.startswith("lr0fm:") for n in names)
    if name == "lr0fm-full.yaml":  # the paper's grid: every loadable backbone x 15 datasets x HR + 4 resolutions
        loadable = {f"lr0fm:{p['name']}" for p in cat.catalogue()["models"] if p["load"]}
        assert set(names) == loadable and len(names) == 63
        assert [d.name for d in resolved.datasets] == LR0FM_DATASETS
        assert [c.name + (f"@{c.params['size']}" if c.params else "") for c in resolved.conditions] == [
            "hr",
            "bicubic@128",
            "bicubic@64",
            "bicubic@32",
            "bicubic@16",
        ]
        for m in resolved.models:
            if cat.preset(m.name.split(":", 1)[1])["load"].get("needs"):
                assert m.params["checkpoint"].startswith("~/checkpoints/")
