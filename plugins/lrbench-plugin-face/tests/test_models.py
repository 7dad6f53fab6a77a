"""Embedder adapters: IResNet key layout, weight files, flip test, facenet and timm adapters (random init, offline)."""

import pytest
import torch
from lrbench_face.iresnet import DEPTHS
from lrbench_face.models import face_iresnet, face_timm, facenet, load_state_dict_file
from PIL import Image
from safetensors.torch import save_file

from lrbench.registry import LrbenchError


def test_iresnet_layout_matches_insightface_names():
    net = face_iresnet("r18").module
    keys = set(net.state_dict())
    for k in (
        "conv1.weight",
        "bn1.running_var",
        "prelu.weight",
        "layer1.0.bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.bn2.bias",
        "layer1.0.prelu.weight",
        "layer1.0.conv2.weight",
        "layer1.0.bn3.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "layer4.1.conv2.weight",
        "bn2.weight",
        "fc.weight",
        "features.weight",
        "features.running_var",
    ):
        assert k in keys, k
    assert "layer1.1.downsample.0.weight" not in keys
    assert net.fc.weight.shape == (512, 512 * 7 * 7)
    # parameter count of IResNet-18 with a 512-d embedding (insightface's r18: 24.0 M)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(24.0e6, rel=0.01)
    assert DEPTHS["r100"] == (3, 13, 30, 3)


def test_weight_files_roundtrip(tmp_path):
    model = face_iresnet("r18", base_width=4, image_size=32, embedding_size=16, layers=[1, 1, 1, 1])
    state = model.module.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "b.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "b.safetensors"))
    x = torch.rand(2, 3, 32, 32)
    for f in ("b.pth", "b.safetensors"):
        loaded = face_iresnet(
            "r18", weights=str(tmp_path / f), base_width=4, image_size=32, embedding_size=16, layers=[1, 1, 1, 1]
        )
        with torch.no_grad():
            assert torch.allclose(loaded.encode_image(x), model.encode_image(x))
        assert loaded.identity()["sha256"] and loaded.identity() != model.identity()
    with pytest.raises(LrbenchError, match="not found"):
        load_state_dict_file(tmp_path / "none.pth")
    with pytest.raises(LrbenchError, match="choices: r18"):
        face_iresnet("r19")


def test_flip_test_is_sum_of_mirror_embeddings():
    model = face_iresnet("r18", base_width=4, image_size=32, embedding_size=16, layers=[1, 1, 1, 1], flip=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.module(x) + model.module(torch.flip(x, dims=[-1]))
        assert torch.allclose(model.encode_image(x), expected)
    assert model.kind == "embedder" and model.identity()["flip"] is True


def test_facenet_file_and_mtcnn_fallback(tmp_path):
    from facenet_pytorch import InceptionResnetV1

    torch.save(InceptionResnetV1(pretrained=None).state_dict(), tmp_path / "fn.pt")
    model = facenet("file", weights=str(tmp_path / "fn.pt"), align=True)
    blank = Image.new("RGB", (112, 112), (128, 128, 128))  # no face: MTCNN finds none, the whole image is used
    x = model.prepare([blank])
    assert x.shape == (1, 3, 160, 160) and x.abs().max() < 1e-2  # 128 maps to ~0 under (x - 127.5) / 128
    assert model.identity()["align"] is True and model.kind == "embedder"
    with pytest.raises(LrbenchError, match="choices: vggface2"):
        facenet("webface")


def test_timm_embedder():
    model = face_timm("resnet10t", embedding_size=32, image_size=64)
    with torch.no_grad():
        e = model.eval().encode_image(model.prepare_tensor(torch.rand(2, 3, 112, 112)))
    assert e.shape == (2, 32)
    with pytest.raises(LrbenchError, match="face-timm"):
        face_timm("no-such-net")


def test_named_facenet_weights_key_the_cells_by_the_cached_file(tmp_path, monkeypatch):
    """facenet:vggface2 loads a file from torch's hub cache by name: once there, its sha256 is in the cell key, so a
    replaced file recomputes (issue 13)."""
    pytest.importorskip("facenet_pytorch")
    from lrbench.plan import entry_identity
    from lrbench.plugins import Plugins
    from lrbench.spec import Item

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    plugins = Plugins()
    item = Item("models", "facenet:vggface2")
    absent = entry_identity(plugins, item)
    assert "inputs" not in absent  # not downloaded yet: the name stands for it
    weights = tmp_path / "checkpoints" / "20180402-114759-vggface2.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"first")
    first = entry_identity(plugins, item)
    weights.write_bytes(b"second!")
    second = entry_identity(plugins, item)
    assert first["inputs"]["weights_sha256"] != second["inputs"]["weights_sha256"]
    assert "inputs" not in entry_identity(plugins, Item("models", "facenet:casia-webface"))


def test_pretrained_face_timm_trunks_key_the_cells_by_the_cached_weights(tmp_path, monkeypatch):
    """face-timm with pretrained: true loads timm's trunk weights by name: once in the Hub cache, the local snapshot is
    in the cell key, so weights re-released under the same tag recompute (issue 13)."""
    pytest.importorskip("timm")
    from lrbench.plan import entry_identity
    from lrbench.plugins import Plugins
    from lrbench.spec import Item

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    plugins = Plugins()
    item = Item("models", "face-timm:resnet18.a1_in1k", {"pretrained": True})
    assert "inputs" not in entry_identity(plugins, item)  # not downloaded yet
    root = tmp_path / "models--timm--resnet18.a1_in1k"
    for commit in ("a" * 40, "b" * 40):
        (root / "snapshots" / commit).mkdir(parents=True)
        (root / "snapshots" / commit / "model.safetensors").write_bytes(commit.encode())
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / "main").write_text(commit)
        assert entry_identity(plugins, item)["inputs"]["hub_snapshot"]["commit"] == commit
    assert "inputs" not in entry_identity(plugins, Item("models", "face-timm:resnet18.a1_in1k"))


def test_check_says_where_named_weights_are_offline(tmp_path, monkeypatch):
    """validate / --dry-run (issue 18): facenet's named weights and face-timm's pretrained trunk, missing offline, name
    the file expected and how to fetch it; building stops in one line instead of a download traceback."""
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("timm")
    from lrbench_face.models import face_timm, facenet

    from lrbench.plugins import Plugins
    from lrbench.weights import WeightsMissing

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LRBENCH_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    models = Plugins().registries["models"]
    (fn,) = models["facenet"].check(id="vggface2")
    target = tmp_path / "torch" / "checkpoints" / "20180402-114759-vggface2.pt"
    assert fn.level == "error" and f"copy the file to {target}" in fn.message and "releases/download" in fn.message
    with pytest.raises(WeightsMissing, match=r"^facenet:vggface2: weights 20180402-114759-vggface2.pt"):
        facenet("vggface2")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"w")
    assert [f.level for f in models["facenet"].check(id="vggface2")] == ["ok"]
    assert models["facenet"].check(id="file") == []  # a local file is checked as a parameter

    (trunk,) = models["face-timm"].check(id="resnet18.a1_in1k", pretrained=True)
    assert trunk.level == "error" and "hf download timm/resnet18.a1_in1k model.safetensors" in trunk.message
    with pytest.raises(WeightsMissing, match=r"^face-timm:resnet18.a1_in1k: weights timm/resnet18.a1_in1k"):
        face_timm("resnet18.a1_in1k", pretrained=True)
    (tag,) = models["face-timm"].check(id="resnet18.no_such_tag", pretrained=True)
    assert "Invalid pretrained tag (no_such_tag) for resnet18" in tag.message
    assert models["face-timm"].check(id="resnet18") == []  # random trunk: nothing to fetch
