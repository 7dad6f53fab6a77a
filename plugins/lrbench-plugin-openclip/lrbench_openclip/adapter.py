"""Zero-shot adapter over open_clip: any architecture with a pretrained tag, an ``hf-hub:`` id, a ``local-dir:`` folder
or a local checkpoint file.

The adapter takes everything the LR0.FM protocol needs from the loaded model itself: input size, mean/std,
interpolation and resize mode from open_clip's preprocess config (``model.visual.preprocess_cfg``), the logit scale
(``exp`` of the learned parameter) and, for SigLIP-style models, the logit bias. The tokenizer is built on first use,
so models whose tokenizer lives in the Hugging Face cache (SigLIP, CLIPA) can still be loaded and inspected offline.

open_clip is imported inside the functions that use it: importing it pulls in timm and transformers (seconds), and every
``lrbench`` command imports this module when it loads the plugins.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import torch

from lrbench import (
    CheckpointRefused,
    Finding,
    LrbenchError,
    ModelAdapter,
    Preprocess,
    content_key,
    file_sha256,
    file_sha256_memo,
    hub_weights,
    require,
    url_weights,
)

SCHEMAS = ("hf-hub:", "local-dir:")
PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16")
#: ``pretrained`` value that asks for the architecture's random initialisation (seeded): tests and chance baselines
RANDOM = "random"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


class OpenClipError(LrbenchError, ValueError):
    """A spec entry names an architecture, tag, file or option open_clip cannot load."""


def parse_id(ident: str) -> dict[str, str]:
    """Split the id of ``openclip:ID`` into loader parameters.

    ``ARCH/TAG`` -> arch + pretrained tag; ``ARCH@PATH`` -> arch + checkpoint file; ``hf-hub:org/name`` and
    ``local-dir:/folder`` -> arch (open_clip reads config and weights from there); ``ARCH`` alone -> arch only.
    """
    ident = ident.strip()
    if not ident:
        raise OpenClipError(
            "empty open_clip id; write openclip:ARCH/TAG, openclip:ARCH@/path/to/ckpt.pt, "
            "openclip:hf-hub:org/name or openclip:local-dir:/path/to/folder"
        )
    if ident.startswith(SCHEMAS):
        return {"arch": ident}
    if "@" in ident:
        arch, checkpoint = ident.split("@", 1)
        return {"arch": arch, "checkpoint": checkpoint}
    if "/" in ident:
        arch, tag = ident.split("/", 1)
        return {"arch": arch, "pretrained": tag}
    return {"arch": ident}


def preprocess_from_cfg(cfg: dict[str, Any]) -> Preprocess:
    """lrbench's :class:`Preprocess` from open_clip's preprocess config (what ``image_transform`` builds at eval)."""
    import open_clip

    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise OpenClipError(f"non-square input size {tuple(size)} is not supported (lrbench crops squares)")
        size = size[0]
    resize_mode = cfg.get("resize_mode", "shortest")
    if resize_mode not in ("shortest", "squash"):
        raise OpenClipError(f"open_clip resize_mode {resize_mode!r} is not supported; supported: shortest, squash")
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in ("bicubic", "bilinear", "nearest"):
        raise OpenClipError(
            f"open_clip interpolation {interpolation!r} is not an eval transform; supported: bicubic, bilinear, nearest"
        )
    mean = tuple(float(v) for v in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(float(v) for v in cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return Preprocess(
        image_size=int(size),
        mean=mean,
        std=std,
        interpolation=interpolation,  # type: ignore[arg-type]
        resize_mode=resize_mode,
    )


class OpenClipAdapter(ModelAdapter):
    """A loaded open_clip model behind lrbench's zero-shot protocol."""

    kind = "zero-shot"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_factory: Callable[[], Callable[[list[str]], torch.Tensor]],
        identity: dict[str, Any],
        precision: str = "fp32",
    ):
        import open_clip

        self.module = model.eval()
        self._tokenizer_factory = tokenizer_factory
        self._tokenizer: Callable[[list[str]], torch.Tensor] | None = None
        self._identity = identity
        self.precision = precision
        self.input_dtype = open_clip.get_input_dtype(precision)
        self.preprocess = preprocess_from_cfg(open_clip.get_model_preprocess_cfg(model))
        self.logit_scale = float(model.logit_scale.detach().float().exp())
        bias = getattr(model, "logit_bias", None)
        #: SigLIP's learned bias: a constant added to every logit, so it never changes a zero-shot ranking
        self.logit_bias = None if bias is None else float(bias.detach().float())
        self.device = next(model.parameters()).device

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    @property
    def tokenizer(self) -> Callable[[list[str]], torch.Tensor]:
        if self._tokenizer is None:
            self._tokenizer = self._tokenizer_factory()
        return self._tokenizer

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_dtype is not None:
            x = x.to(self.input_dtype)
        return self.module.encode_image(x)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.module.encode_text(tokens)


def _tokenizer_factory(name: str, cache_dir: str | None) -> Callable[[], Callable[[list[str]], torch.Tensor]]:
    def build() -> Callable[[list[str]], torch.Tensor]:
        import open_clip

        try:
            return open_clip.get_tokenizer(name, cache_dir=cache_dir)
        except Exception as exc:
            hf_name = ""
            if not name.startswith(SCHEMAS):
                hf_name = ((open_clip.get_model_config(name) or {}).get("text_cfg") or {}).get("hf_tokenizer_name", "")
            hint = (
                f" It needs the Hugging Face tokenizer {hf_name!r}: download it once while online "
                f"(huggingface-cli download {hf_name}) or point HF_HOME at a cache that holds it."
                if hf_name
                else ""
            )
            raise OpenClipError(
                f"could not build the tokenizer of open_clip model {name!r}: {type(exc).__name__}: {exc}.{hint}"
            ) from exc

    return build


def _dir_sha256(folder: Path) -> str:
    """One hash over a local-dir model: its config and every weights file, by name and content."""
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "open_clip_config.json" or path.suffix in WEIGHT_SUFFIXES or path.name.startswith("tokenizer"):
            h.update(path.name.encode())
            h.update(file_sha256_memo(path).encode())
    return h.hexdigest()


def local_dir_inputs(arch: str | None) -> dict[str, Any]:
    """What a ``local-dir:`` model reads beyond its spec entry (config, tokenizer, weights in the folder), for cell keys;
    nothing for other forms (tags and hub ids are names: their bytes are not hashed)."""
    if arch is None or not arch.startswith("local-dir:"):
        return {}
    folder = Path(arch[len("local-dir:") :]).expanduser()
    return {"local_dir_sha256": _dir_sha256(folder)} if folder.is_dir() else {}


def _weights_version(path: Path) -> str:
    """A cheap identity of a downloaded weights file: in the Hugging Face cache a snapshot file links to a blob named
    by its content hash (sha256 for LFS files); elsewhere its size and mtime."""
    real = path.resolve()
    if real.parent.name == "blobs":
        return f"blob:{real.name}"
    st = real.stat()
    return f"file:{real}:{st.st_size}:{st.st_mtime_ns}"


def pretrained_inputs(arch: str, tag: str, cache_dir: str | None = None) -> dict[str, Any]:
    """The weights file an ``ARCH/TAG`` model loads by name, found where open_clip's ``download_pretrained`` puts it
    (Hugging Face cache, or ``~/.cache/clip`` for URL downloads) without downloading; nothing until it is there."""
    import open_clip
    from open_clip import pretrained as op

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        return {}
    found: Path | None = None
    if cfg.get("file"):
        found = Path(cfg["file"]).expanduser()
    elif cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(cfg["hf_hub"])
        filename = filename or op.HF_WEIGHTS_NAME
        for name in [*op._get_safe_alternatives(filename), filename]:  # the order open_clip tries them in
            hit = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
            if isinstance(hit, str):
                found = Path(hit)
                break
    elif cfg.get("url"):
        found = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
    if found is None or not found.is_file():
        return {}
    return {"pretrained_weights": _weights_version(found)}


def _check_arch(arch: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise OpenClipError(
            f"unknown open_clip architecture {arch!r}.{hint} See open_clip.list_models() for all "
            "names; ids may also be hf-hub:org/name or local-dir:/path/to/folder"
        )
    return cfg


def weights_status(
    arch: str, pretrained: str | None = None, checkpoint: str | None = None, cache_dir: str | None = None
) -> Finding | None:
    """Where the weights of an entry are (found / will download / missing offline), without loading or fetching;
    None when the entry reads no downloadable weights (random init, local folder, unknown arch or tag)."""
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if checkpoint is not None or pretrained == RANDOM or arch.startswith("local-dir:"):
        return None
    if arch.startswith("hf-hub:"):
        return hub_weights(arch[len("hf-hub:") :], [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME], cache_dir)
    cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else None
    if not cfg or "file" in cfg:
        return None
    if cfg.get("hf_hub"):  # open_clip prefers the Hub, and a .safetensors twin of a .bin
        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        safe = (
            [HF_SAFE_WEIGHTS_NAME]
            if filename == HF_WEIGHTS_NAME
            else ([filename[:-4] + ".safetensors"] if filename.endswith((".bin", ".pth")) else [])
        )
        return hub_weights(repo, [*safe, filename], cache_dir)
    return url_weights(cfg["url"], cache_dir or os.path.expanduser("~/.cache/clip"))


def load_openclip(
    arch: str,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    precision: str = "fp32",
    quick_gelu: bool | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
    label: str | None = None,
) -> OpenClipAdapter:
    """Load an open_clip model and wrap it; see :func:`parse_id` for the id forms and docs/openclip.md for examples.

    ``label`` replaces the architecture name in the identity (a local-dir model known by a short name).
    """
    import open_clip

    if precision not in PRECISIONS:
        raise OpenClipError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if pretrained is not None and checkpoint is not None:
        raise OpenClipError(f"give either pretrained ({pretrained!r}) or checkpoint ({checkpoint!r}), not both")
    schema = next((s for s in SCHEMAS if arch.startswith(s)), None)
    if schema is not None and pretrained not in (None, RANDOM):
        raise OpenClipError(
            f"{arch!r} carries its own weights; pretrained={pretrained!r} does not apply "
            "(use checkpoint: to load other weights into its architecture)"
        )
    identity: dict[str, Any] = {"family": "openclip", "arch": arch, "precision": precision}
    kwargs: dict[str, Any] = {"precision": precision, "cache_dir": cache_dir}
    model_cfg: dict[str, Any] | None = None
    if schema is None:
        model_cfg = _check_arch(arch)
        identity["config"] = content_key(model_cfg)[:16]
    elif schema == "local-dir:":
        folder = Path(arch[len(schema) :]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise OpenClipError(
                f"local-dir {str(folder)!r} holds no open_clip_config.json "
                "(expected: open_clip_config.json with model_cfg/preprocess_cfg, and weights such as "
                "open_clip_model.safetensors)"
            )
        arch = f"local-dir:{folder.resolve()}"
        identity["arch"] = "local-dir"
        identity["config"] = file_sha256(folder / "open_clip_config.json")[:16]

    status = weights_status(arch, pretrained, checkpoint, cache_dir)
    if status is not None:  # offline without the weights: one line now, not minutes of retries and a traceback
        require(status, f"openclip:{arch}" + (f"/{pretrained}" if pretrained else ""))
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise OpenClipError(f"checkpoint file {str(path)!r} does not exist")
        identity["checkpoint_sha256"] = file_sha256(path)
        gelu = bool(quick_gelu)
        model = open_clip.create_model(arch, pretrained=None, load_weights=False, force_quick_gelu=gelu, **kwargs)
        try:
            open_clip.load_checkpoint(model, str(path), weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointRefused(path, exc) from None
    elif pretrained == RANDOM:
        gelu = bool(quick_gelu)
        identity["random_init_seed"] = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = open_clip.create_model(arch, pretrained=None, load_weights=False, force_quick_gelu=gelu, **kwargs)
    elif schema is not None:
        gelu = bool(quick_gelu)
        if schema == "local-dir:":
            identity["weights_sha256"] = _dir_sha256(Path(arch[len(schema) :]))
        else:
            identity["hf_hub"] = arch[len(schema) :]
        model = open_clip.create_model(arch, force_quick_gelu=gelu, require_pretrained=True, **kwargs)
        if schema == "hf-hub:":
            weights = open_clip.pretrained.download_pretrained_from_hf(arch[len(schema) :], cache_dir=cache_dir)
            identity["weights_sha256"] = file_sha256(weights)
    else:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained is None:
            raise OpenClipError(
                f"open_clip model {arch!r} needs weights: a pretrained tag ({', '.join(tags) or 'none'}"
                f"), a checkpoint file, or pretrained: {RANDOM} for a seeded random init"
            )
        tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if not tag_cfg:
            raise OpenClipError(
                f"unknown pretrained tag {pretrained!r} for {arch!r}; tags: {', '.join(tags) or 'none'}"
                " (a weights file goes in checkpoint:, or openclip:ARCH@/path/to/file)"
            )
        # open_clip only warns when a tag was trained with QuickGELU and the arch config uses GELU: follow the tag
        gelu = bool(tag_cfg.get("quick_gelu", False)) if quick_gelu is None else quick_gelu
        identity["pretrained"] = pretrained
        identity["source"] = tag_cfg.get("hf_hub") or tag_cfg.get("url") or ""
        model = open_clip.create_model(
            arch, pretrained=pretrained, force_quick_gelu=gelu, require_pretrained=True, **kwargs
        )
    if gelu and not (model_cfg or {}).get("quick_gelu", False):
        identity["quick_gelu"] = True
    if label is not None:
        identity["arch"] = label
    return OpenClipAdapter(model, _tokenizer_factory(arch, cache_dir), identity, precision)
