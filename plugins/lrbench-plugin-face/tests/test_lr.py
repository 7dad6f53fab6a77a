"""The face LR simulation (both paths) and the per-image resolution protocols."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lrbench_face.lr import RANGES, FaceLR, FaceProtocol, lr_pil, lr_tensor, parse_protocol
from lrbench_face.toyfaces import render_image
from PIL import Image

from lrbench.registry import LrbenchError


def test_tensor_path_is_torch_down_antialiased_then_up_plain_in_8_bits():
    x = torch.rand(2, 3, 112, 112)
    small = F.interpolate(x, size=(14, 14), mode="bicubic", antialias=True).clamp(0, 1)
    ref = (F.interpolate(small, size=(112, 112), mode="bicubic").clamp(0, 1) * 255).round() / 255
    out = lr_tensor(x, 14)
    assert out.shape == x.shape and torch.equal(out, ref)
    assert torch.equal((out * 255).round(), out * 255)  # 8-bit levels


def test_per_image_sizes_match_single_size_calls():
    x = torch.rand(4, 3, 112, 112)
    out = lr_tensor(x, torch.tensor([7, 20, 7, 112]))
    assert torch.equal(out[0], lr_tensor(x[:1], 7)[0]) and torch.equal(out[1], lr_tensor(x[1:2], 20)[0])
    assert torch.allclose(out[3], (x[3] * 255).round() / 255, atol=1e-6)  # 112 -> 112 is the identity


def test_pil_and_tensor_paths_agree_and_antialias_matters():
    im = render_image(0, "test", 3, 0)
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 255
    for r in (7, 14, 28):
        ref = torch.from_numpy(np.array(lr_pil(im, r))).permute(2, 0, 1)[None].float() / 255
        fast = lr_tensor(x, r)
        aliased = F.interpolate(F.interpolate(x, size=(r, r), mode="bicubic"), size=(112, 112), mode="bicubic")
        err = (fast - ref).abs().mean().item()
        assert err < 0.02, (r, err)  # PIL (a=-0.5) vs torch (a=-0.75) bicubic: small, measured difference
        assert (aliased.clamp(0, 1) - ref).abs().mean().item() > err  # without antialias it is further off
    assert lr_pil(im, 7).size == im.size


def test_condition_labels():
    assert FaceLR(16).condition == "face-lr@16"
    assert FaceLR(16, mode="equal").condition == "face-lr@16(mode=equal)"
    assert FaceProtocol("low").condition == "face-protocol@low"
    with pytest.raises(ValueError, match="'cross' or 'equal'"):  # pydantic's ValidationError, checked by validate
        FaceLR(16, mode="both")


def test_parse_protocol_formats():
    assert parse_protocol("7\n12\n112\n").tolist() == [7, 12, 112]
    assert parse_protocol("resolution\n5,6\n7").tolist() == [5, 6, 7]
    assert parse_protocol("5 6, 7;8").tolist() == [5, 6, 7, 8]
    with pytest.raises(LrbenchError, match="'x'"):
        parse_protocol("5\nx\n")
    with pytest.raises(LrbenchError, match=r"in \[1, 4096\] px, found 0"):
        parse_protocol("5\n0\n")


def test_protocol_file_and_ranges(tmp_path):
    f = tmp_path / "lfw_low.csv"
    f.write_text("\n".join(str(v) for v in [5, 10, 7, 9]))
    assert FaceProtocol(file=str(f)).resolutions(4).tolist() == [5, 10, 7, 9]
    with pytest.raises(LrbenchError, match="lists 4 resolutions but the dataset has 6"):
        FaceProtocol(file=str(f)).resolutions(6)
    with pytest.raises(LrbenchError, match="not found"):
        FaceProtocol(file=str(tmp_path / "missing.csv"))
    for name, (lo, hi) in RANGES.items():
        r = FaceProtocol(name, seed=3).resolutions(20000)
        assert r.min() == lo and r.max() == hi
        counts = np.bincount(r - lo)
        assert counts.min() > 0.8 * counts.mean()  # every resolution about equally likely
    assert RANGES == {"low": (5, 10), "mid": (11, 39), "high": (40, 112), "all": (5, 112)}
    with pytest.raises(LrbenchError, match="its own resolution"):
        FaceProtocol("low").pil(Image.new("RGB", (8, 8)))
