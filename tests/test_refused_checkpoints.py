"""A weights file that needs code to unpickle is refused in one line naming the file, by the core loader and by every
plugin that reads user weights; a file whose keys do not fit is an error, never a silently random network (issue 13)."""

from __future__ import annotations

import os

import pytest
import torch

from lrbench.checkpoints import CheckpointRefused, load_checkpoint
from lrbench.registry import LrbenchError


class _Payload:
    def __reduce__(self):
        return os.getcwd, ()


@pytest.fixture
def evil(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "x": _Payload()}, path)
    return path


def _assert_refused(exc: BaseException, path) -> None:
    text = str(exc)
    assert isinstance(exc, LrbenchError) and len(text.splitlines()) == 1
    assert str(path) in text and "refused for safety" in text and "getcwd" in text
    assert "weights_only=False" not in text  # never suggest running the file's code


def test_core_loader_refuses_in_one_line_and_loads_plain_state_dicts(evil, tmp_path):
    with pytest.raises(CheckpointRefused) as exc:
        load_checkpoint(evil)
    _assert_refused(exc.value, evil)
    torch.save({"w": torch.ones(3)}, tmp_path / "ok.pt")
    assert torch.equal(load_checkpoint(tmp_path / "ok.pt")["w"], torch.ones(3))


def _face(path):
    from lrbench_face.models import face_iresnet

    face_iresnet("r50", weights=str(path), base_width=8, image_size=32, layers=[1, 1, 1, 1])


def _sr(path):
    from lrbench_sr.backbones import build, load_weights

    load_weights(build("edsr", "baseline", 4, {"num_feat": 8, "num_block": 2}), path)


def _sr_file(path):
    from lrbench_sr.method import SpandrelSRMethod

    SpandrelSRMethod(str(path)).network()


def _hf(path):
    from lrbench_hf.plugin import albef

    albef(checkpoint=str(path))


def _rics(path):
    from lrbench_rics.timm_models import load_state_dict

    load_state_dict(path)


def _openclip(path, monkeypatch):
    open_clip = pytest.importorskip("open_clip")
    from lrbench_openclip.adapter import load_openclip

    # a tiny stand-in for the architecture: the refusal happens in open_clip.load_checkpoint, not in the model
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: torch.nn.Linear(2, 2))
    load_openclip("RN50", checkpoint=str(path))


@pytest.mark.parametrize("loader", [_face, _sr, _sr_file, _hf, _rics, _openclip])
def test_every_plugin_refuses_a_code_pickle_in_one_line(loader, evil, monkeypatch):
    module = {
        "_face": "lrbench_face",
        "_sr": "lrbench_sr",
        "_sr_file": "spandrel",
        "_hf": "lrbench_hf",
        "_rics": "lrbench_rics",
        "_openclip": "lrbench_openclip",
    }[loader.__name__]
    pytest.importorskip(module)
    with pytest.raises(LrbenchError) as exc:
        loader(evil, monkeypatch) if loader is _openclip else loader(evil)
    _assert_refused(exc.value, evil)


def test_facenet_file_with_wrong_keys_is_an_error_not_a_random_network(tmp_path):
    pytest.importorskip("facenet_pytorch")
    from facenet_pytorch import InceptionResnetV1
    from lrbench_face.models import facenet

    state = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    good = tmp_path / "good.pt"
    torch.save({**state, "logits.weight": torch.zeros(5, 512), "logits.bias": torch.zeros(5)}, good)
    model = facenet("file", weights=str(good))  # a training head is the only thing it may leave out
    assert torch.equal(model.module.last_linear.weight, state["last_linear.weight"])
    wrong = tmp_path / "wrong.pt"
    torch.save({f"backbone_{k}": v for k, v in list(state.items())[:3]}, wrong)
    with pytest.raises(
        LrbenchError,
        match=r"wrong\.pt: weights do not fit InceptionResnetV1 \(missing 714: .*unexpected 3: backbone_conv2d_1a",
    ):
        facenet("file", weights=str(wrong))


def test_timm_embedder_checkpoint_missing_parameters_is_an_error(tmp_path):
    timm = pytest.importorskip("timm")
    from lrbench_rics.timm_models import TimmAdapter

    net = timm.create_model("resnet18", num_classes=0)
    partial = {k: v for k, v in net.state_dict().items() if not k.startswith("layer4")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(LrbenchError, match=r"partial\.pt: weights do not fit timm resnet18: \d+ parameters missing"):
        TimmAdapter("resnet18", kind="embedder", checkpoint=str(tmp_path / "partial.pt"))
