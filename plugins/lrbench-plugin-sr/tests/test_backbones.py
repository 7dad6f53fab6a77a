"""Backbones: output sizes, every published key layout loads exactly, mismatches are named."""

from __future__ import annotations

import re

import pytest
import torch
from lrbench_sr import backbones
from lrbench_sr.backbones import SRCheckpointError, build, load_weights
from lrbench_sr.inference import SRInference, pad_to_multiple
from sr_testing import TINY


def edsr_pytorch_layout(sd: dict[str, torch.Tensor], num_block: int) -> dict[str, torch.Tensor]:
    """Inverse of the loader's renaming, written independently: basicsr EDSR -> EDSR-PyTorch names + MeanShift."""
    out = {}
    for k, v in sd.items():
        k2 = re.sub(r"^conv_first\.", "head.0.", k)
        k2 = re.sub(r"^body\.(\d+)\.conv1\.", r"body.\1.body.0.", k2)
        k2 = re.sub(r"^body\.(\d+)\.conv2\.", r"body.\1.body.2.", k2)
        k2 = re.sub(r"^conv_after_body\.", f"body.{num_block}.", k2)
        k2 = re.sub(r"^upsample\.(\d+)\.", r"tail.0.\1.", k2)
        k2 = re.sub(r"^conv_last\.", "tail.1.", k2)
        out[k2] = v
    mean = torch.tensor([0.4488, 0.4371, 0.4040]) * 255
    out["sub_mean.weight"] = torch.eye(3).view(3, 3, 1, 1)
    out["sub_mean.bias"] = -mean
    out["add_mean.weight"] = torch.eye(3).view(3, 3, 1, 1)
    out["add_mean.bias"] = mean
    return out


def esrgan_old_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        k2 = re.sub(r"^body\.", "RRDB_trunk.", k)
        k2 = re.sub(r"\.rdb(\d)\.", r".RDB\1.", k2)
        k2 = re.sub(r"^conv_body\.", "trunk_conv.", k2)
        k2 = re.sub(r"^conv_up(\d)\.", r"upconv\1.", k2)
        k2 = re.sub(r"^conv_hr\.", "HRconv.", k2)
        out[k2] = v
    return out


CASES = [(a, v, s) for (a, v), opts in TINY.items() for s in backbones.VARIANTS[(a, v)].scales]


@pytest.mark.parametrize("arch,variant,scale", CASES)
def test_output_size(arch, variant, scale):
    bb = build(arch, variant, scale, TINY[(arch, variant)])
    sr = SRInference(bb.module, scale, bb.pad_multiple)
    x = torch.rand(2, 3, 13, 10)  # not a multiple of the SwinIR window: padded, then cropped
    y = sr(x)
    assert y.shape == (2, 3, 13 * scale, 10 * scale)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


LAYOUTS = {
    "edsr": ["params", "bare", "edsr-pytorch"],
    "swinir": ["params", "params_ema", "bare"],
    "rrdbnet": ["params_ema", "bare", "esrgan-old"],
}


@pytest.mark.parametrize("arch,variant", list(TINY))
def test_published_layouts_load_exactly(arch, variant, tmp_path):
    scale = 4
    opts = TINY[(arch, variant)]
    source = build(arch, variant, scale, opts).module
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = source(x)
    sd = source.state_dict()
    for layout in LAYOUTS[arch]:
        if layout == "edsr-pytorch":
            obj = edsr_pytorch_layout(sd, opts["num_block"])
        elif layout == "esrgan-old":
            obj = esrgan_old_layout(sd)
        elif layout == "bare":
            obj = {f"module.{k}": v for k, v in sd.items()}  # DataParallel prefix, stripped on load
        else:
            obj = {layout: sd}
        path = tmp_path / f"{layout}.pth"
        torch.save(obj, path)
        torch.manual_seed(123)
        target = build(arch, variant, scale, opts)
        found = load_weights(target, path)
        assert found == {"edsr-pytorch": "edsr-pytorch", "esrgan-old": "esrgan-old"}.get(layout, "basicsr")
        with torch.no_grad():
            assert torch.equal(target.module(x), expected), layout


def test_params_ema_preferred_over_params(tmp_path):
    opts = TINY[("rrdbnet", "realesrgan")]
    a, b = build("rrdbnet", "realesrgan", 4, opts).module, build("rrdbnet", "realesrgan", 4, opts).module
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, tmp_path / "w.pth")
    target = build("rrdbnet", "realesrgan", 4, opts)
    load_weights(target, tmp_path / "w.pth")
    assert torch.equal(target.module.conv_first.weight, b.conv_first.weight)


def test_mismatch_names_keys(tmp_path):
    small = build("edsr", "baseline", 4, {"num_feat": 8, "num_block": 2}).module.state_dict()
    small.pop("conv_last.bias")
    small["extra.weight"] = torch.zeros(1)
    torch.save({"params": small}, tmp_path / "bad.pth")
    target = build("edsr", "baseline", 4, {"num_feat": 16, "num_block": 2})
    with pytest.raises(SRCheckpointError) as err:
        load_weights(target, tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing key(s): conv_last.bias" in msg
    assert "unexpected key(s): extra.weight" in msg
    assert re.search(r"\d+ shape mismatch\(es\): body\.0\.conv1\.bias file \(8,\) vs arch \(16,\)", msg)
    assert "sr/file" in msg


def test_wrong_scale_and_names():
    with pytest.raises(Exception, match="supports scales 4"):
        build("swinir", "real", 2)
    with pytest.raises(Exception, match="choices: classical, lightweight, real, real-large"):
        build("swinir", "medium", 4)
    with pytest.raises(Exception, match="unknown edsr option"):
        build("edsr", "baseline", 4, {"depth": 3})


def test_published_file_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(SRCheckpointError, match=r"edsr_baseline_x4-6b446fab\.pt from https://cv\.snu\.ac\.kr"):
        backbones.find_published("edsr", "baseline", 4)
    (tmp_path / "BSRGAN.pth").write_bytes(b"x")
    assert backbones.find_published("rrdbnet", "bsrgan", 4) == tmp_path / "BSRGAN.pth"


def test_pad_to_multiple_mirrors():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    y = pad_to_multiple(x, 8)
    assert y.shape == (1, 1, 8, 8)
    assert y[0, 0, 0].tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    assert torch.equal(y[0, 0], y[0, 0, :1].expand(8, 8))
