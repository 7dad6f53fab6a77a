"""SR backbones: basicsr architectures configured as their published checkpoints, and checkpoint loading.

A backbone is named by ``arch`` (edsr, swinir, rrdbnet), ``variant`` and ``scale``. The variant fixes the
hyper-parameters of the published weights (the official test scripts' settings), so a checkpoint either loads exactly or
the error names the keys that differ. Published files come in three key layouts, all accepted:

- basicsr / SwinIR / Real-ESRGAN: the state dict under ``params`` or ``params_ema`` (preferred when both exist) or bare;
- EDSR-PyTorch (``edsr_baseline_x4-6b446fab.pt``): ``head`` / ``body.i.body.{0,2}`` / ``tail`` plus mean-shift layers;
- ESRGAN / BSRGAN (KAIR): ``RRDB_trunk`` / ``RDBn`` / ``trunk_conv`` / ``upconvN`` / ``HRconv``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from lrbench import CheckpointRefused, LrbenchError, load_checkpoint

#: where published checkpoints are looked up by file name when a spec names no ``checkpoint``
WEIGHTS_ENV = "LRBENCH_SR_WEIGHTS"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/lrbench/sr")

_EDSR_URL = "https://cv.snu.ac.kr/research/EDSR/models/"
_SWINIR_URL = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
_REALESRGAN_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/"


class SRCheckpointError(LrbenchError):
    """A checkpoint is missing, unreadable, or does not fit the architecture it was given to."""


@dataclass(frozen=True)
class Variant:
    """One published configuration of an architecture."""

    arch: str
    name: str
    scales: tuple[int, ...]
    kwargs: dict[str, Any]
    #: official file names per scale (looked up in the weights folder) and where they are published
    files: dict[int, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""
    description: str = ""


def _edsr_files(prefix: str, hashes: dict[int, str]) -> dict[int, tuple[str, ...]]:
    return {s: (f"{prefix}_x{s}-{h}.pt",) for s, h in hashes.items()}


VARIANTS: dict[tuple[str, str], Variant] = {
    (v.arch, v.name): v
    for v in (
        Variant(
            "edsr",
            "baseline",
            (2, 3, 4, 8),
            dict(num_feat=64, num_block=16, res_scale=1.0),
            _edsr_files("edsr_baseline", {2: "1bc95232", 3: "abf2a44e", 4: "6b446fab"}),
            _EDSR_URL,
            "EDSR-baseline (16 blocks, 64 channels; the SR4IR backbone)",
        ),
        Variant(
            "edsr",
            "large",
            (2, 3, 4, 8),
            dict(num_feat=256, num_block=32, res_scale=0.1),
            _edsr_files("edsr", {2: "0edfb8a3", 3: "ea3ef2c6", 4: "4f62e9ef"}),
            _EDSR_URL,
            "EDSR (32 blocks, 256 channels)",
        ),
        Variant(
            "swinir",
            "classical",
            (2, 3, 4, 8),
            dict(
                embed_dim=180,
                depths=(6,) * 6,
                num_heads=(6,) * 6,
                window_size=8,
                mlp_ratio=2.0,
                upsampler="pixelshuffle",
                resi_connection="1conv",
            ),
            {
                s: (f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth", f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth")
                for s in (2, 3, 4, 8)
            },
            _SWINIR_URL,
            "SwinIR-M classical SR (bicubic degradation)",
        ),
        Variant(
            "swinir",
            "lightweight",
            (2, 3, 4),
            dict(
                embed_dim=60,
                depths=(6,) * 4,
                num_heads=(6,) * 4,
                window_size=8,
                mlp_ratio=2.0,
                upsampler="pixelshuffledirect",
                resi_connection="1conv",
            ),
            {s: (f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth",) for s in (2, 3, 4)},
            _SWINIR_URL,
            "SwinIR-S lightweight SR",
        ),
        Variant(
            "swinir",
            "real",
            (4,),
            dict(
                embed_dim=180,
                depths=(6,) * 6,
                num_heads=(6,) * 6,
                window_size=8,
                mlp_ratio=2.0,
                upsampler="nearest+conv",
                resi_connection="1conv",
            ),
            {4: ("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth",)},
            _SWINIR_URL,
            "SwinIR-M real-world SR (BSRGAN degradations, GAN)",
        ),
        Variant(
            "swinir",
            "real-large",
            (4,),
            dict(
                embed_dim=240,
                depths=(6,) * 9,
                num_heads=(8,) * 9,
                window_size=8,
                mlp_ratio=2.0,
                upsampler="nearest+conv",
                resi_connection="3conv",
            ),
            {4: ("003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",)},
            _SWINIR_URL,
            "SwinIR-L real-world SR",
        ),
        Variant(
            "rrdbnet",
            "esrgan",
            (4,),
            dict(num_feat=64, num_block=23, num_grow_ch=32),
            {4: ("RRDB_ESRGAN_x4.pth", "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth")},
            "https://github.com/xinntao/ESRGAN",
            "ESRGAN (RRDBNet, 23 blocks)",
        ),
        Variant(
            "rrdbnet",
            "bsrgan",
            (4,),
            dict(num_feat=64, num_block=23, num_grow_ch=32),
            {4: ("BSRGAN.pth",)},
            "https://github.com/cszn/KAIR/releases/download/v1.0/",
            "BSRGAN (RRDBNet trained on the BSRGAN degradation model)",
        ),
        Variant(
            "rrdbnet",
            "realesrgan",
            (2, 4),
            dict(num_feat=64, num_block=23, num_grow_ch=32),
            {4: ("RealESRGAN_x4plus.pth",), 2: ("RealESRGAN_x2plus.pth",)},
            _REALESRGAN_URL,
            "Real-ESRGAN x4plus / x2plus (RRDBNet)",
        ),
    )
}

#: the short method names: ``sr/<alias>-x<scale>``
ALIASES: dict[str, tuple[str, str]] = {
    "edsr-baseline": ("edsr", "baseline"),
    "edsr": ("edsr", "large"),
    "swinir": ("swinir", "classical"),
    "swinir-classical": ("swinir", "classical"),
    "swinir-lightweight": ("swinir", "lightweight"),
    "swinir-real": ("swinir", "real"),
    "swinir-real-large": ("swinir", "real-large"),
    "esrgan": ("rrdbnet", "esrgan"),
    "bsrgan": ("rrdbnet", "bsrgan"),
    "realesrgan": ("rrdbnet", "realesrgan"),
}


def _builders() -> dict[str, Callable[..., nn.Module]]:
    # basicsr (and the cv2 it imports) takes seconds to import; only building a network needs it, loading plugins not
    from ._basicsr import EDSR, RRDBNet, SwinIR

    return {
        "edsr": lambda scale, **kw: EDSR(3, 3, upscale=scale, img_range=255.0, **kw),
        "swinir": lambda scale, **kw: SwinIR(upscale=scale, in_chans=3, img_size=64, img_range=1.0, **kw),
        "rrdbnet": lambda scale, **kw: RRDBNet(3, 3, scale=scale, **kw),
    }


#: buffers recomputed from the configuration (SwinIR's masks depend on the training patch size): never compared
_DERIVED = re.compile(r"(attn_mask|relative_position_index)$")


def variant(arch: str, name: str) -> Variant:
    """The variant, or an error listing the choices."""
    if (arch, name) not in VARIANTS:
        archs = sorted({a for a, _ in VARIANTS})
        if arch not in archs:
            raise LrbenchError(f"unknown SR arch {arch!r}; choices: {', '.join(archs)}")
        names = sorted(v for a, v in VARIANTS if a == arch)
        raise LrbenchError(f"unknown {arch} variant {name!r}; choices: {', '.join(names)}")
    return VARIANTS[(arch, name)]


@dataclass
class Backbone:
    """A built SR network and the facts inference needs."""

    module: nn.Module
    arch: str
    variant: str
    scale: int
    #: inputs are padded to a multiple of this (SwinIR window size; RRDBNet x2 pixel-unshuffles by 2)
    pad_multiple: int


def build(arch: str, variant_name: str, scale: int, options: dict[str, Any] | None = None) -> Backbone:
    """The architecture of ``arch``/``variant`` at ``scale``; ``options`` override its hyper-parameters (e.g.
    ``num_block`` of a custom-trained EDSR)."""
    v = variant(arch, variant_name)
    if scale not in v.scales:
        raise LrbenchError(f"{arch} {variant_name} supports scales {', '.join(map(str, v.scales))}, got {scale}")
    kwargs = {**v.kwargs, **(options or {})}
    unknown = set(options or {}) - set(v.kwargs) - {"img_size", "drop_path_rate", "num_grow_ch"}
    if unknown:
        raise LrbenchError(
            f"unknown {arch} option(s) {', '.join(sorted(unknown))}; choices: {', '.join(sorted(v.kwargs))}"
        )
    for key in ("depths", "num_heads"):
        if key in kwargs:
            kwargs[key] = list(kwargs[key])
    module = _builders()[arch](scale, **kwargs)
    pad = kwargs.get("window_size", 1) if arch == "swinir" else (2 if arch == "rrdbnet" and scale == 2 else 1)
    return Backbone(module.eval(), arch, variant_name, scale, int(pad))


# ---------------------------------------------------------------------------------------------- key layouts


def unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint file: ``params_ema`` > ``params`` > the object itself; ``module.`` stripped."""
    if not isinstance(obj, dict):
        raise SRCheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    for key in ("params_ema", "params"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def from_edsr_pytorch(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EDSR-PyTorch names (head / body / tail, MeanShift layers) -> basicsr EDSR names.

    The mean-shift layers hold the DIV2K RGB mean that basicsr's EDSR subtracts as a constant, so they are dropped.
    """
    blocks = [int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.body\.", k))]
    last = max(blocks) + 1 if blocks else 0
    out = {}
    for k, v in sd.items():
        if k.startswith(("sub_mean.", "add_mean.")):
            continue
        k2 = re.sub(r"^head\.0\.", "conv_first.", k)
        k2 = re.sub(r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1.", k2)
        k2 = re.sub(r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2.", k2)
        k2 = re.sub(rf"^body\.{last}\.", "conv_after_body.", k2)
        k2 = re.sub(r"^tail\.0\.(\d+)\.", r"upsample.\1.", k2)
        k2 = re.sub(r"^tail\.1\.", "conv_last.", k2)
        out[k2] = v
    return out


def from_esrgan_old(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ESRGAN / BSRGAN (KAIR) RRDBNet names -> basicsr RRDBNet names."""
    out = {}
    for k, v in sd.items():
        k2 = re.sub(r"^RRDB_trunk\.", "body.", k)
        k2 = re.sub(r"\.RDB(\d)\.", r".rdb\1.", k2)
        k2 = re.sub(r"^trunk_conv\.", "conv_body.", k2)
        k2 = re.sub(r"^upconv(\d)\.", r"conv_up\1.", k2)
        k2 = re.sub(r"^HRconv\.", "conv_hr.", k2)
        out[k2] = v
    return out


def to_basicsr_layout(arch: str, sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Rename a state dict to basicsr's layout; also returns the layout it was found in."""
    if arch == "edsr" and any(k.startswith("head.") for k in sd):
        return from_edsr_pytorch(sd), "edsr-pytorch"
    if arch == "rrdbnet" and any(k.startswith("RRDB_trunk.") for k in sd):
        return from_esrgan_old(sd), "esrgan-old"
    return sd, "basicsr"


def load_weights(backbone: Backbone, path: str | Path) -> str:
    """Load a checkpoint file (``torch.load(weights_only=True)`` or safetensors) into ``backbone``; returns the layout.

    Raises :class:`SRCheckpointError` naming the missing, unexpected and mis-shaped keys when the file does not fit.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SRCheckpointError(f"SR checkpoint not found: {path}")
    try:
        raw: Any = load_checkpoint(path)
    except CheckpointRefused:
        raise
    except Exception as exc:
        raise SRCheckpointError(f"cannot read SR checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    sd, layout = to_basicsr_layout(backbone.arch, unwrap(raw))
    check_fit(backbone, sd, str(path))
    backbone.module.load_state_dict(sd, strict=False)
    return layout


def check_fit(backbone: Backbone, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise if ``sd`` does not match the backbone's parameters exactly (derived buffers aside)."""
    expected = {k: v.shape for k, v in backbone.module.state_dict().items() if not _DERIVED.search(k)}
    given = {k: v.shape for k, v in sd.items() if not _DERIVED.search(k)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = sorted(k for k in set(expected) & set(given) if tuple(expected[k]) != tuple(given[k]))
    if not (missing or unexpected or shapes):
        return

    def few(keys: list[str], fmt: Callable[[str], str] = str) -> str:
        return ", ".join(fmt(k) for k in keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {few(unexpected)}")
    if shapes:
        parts.append(
            f"{len(shapes)} shape mismatch(es): "
            + few(shapes, lambda k: f"{k} file {tuple(given[k])} vs arch {tuple(expected[k])}")
        )
    raise SRCheckpointError(
        f"{source} does not fit {backbone.arch} {backbone.variant} x{backbone.scale}: "
        + "; ".join(parts)
        + ". Check arch/variant/scale (or pass `options` for a custom configuration), or load the file by "
        "inspection with `sr/file` (spandrel)."
    )


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV, str(DEFAULT_WEIGHTS_DIR))).expanduser()


def find_published(arch: str, variant_name: str, scale: int) -> Path:
    """The published checkpoint of this backbone in the weights folder, or an error saying what to put where."""
    v = variant(arch, variant_name)
    names = v.files.get(scale, ())
    folder = weights_dir()
    for name in names:
        if (folder / name).is_file():
            return folder / name
    hint = (
        f"download one of {', '.join(names)} from {v.source} into {folder} (or set ${WEIGHTS_ENV})"
        if names
        else f"no published {arch} {variant_name} x{scale} weights are known"
    )
    raise SRCheckpointError(
        f"no checkpoint for SR backbone {arch} {variant_name} x{scale}: {hint}, or give `checkpoint: PATH`. "
        "Random SR weights are meaningless; `random_init: true` exists for tests only."
    )
