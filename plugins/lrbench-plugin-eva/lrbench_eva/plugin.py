"""The ``eva`` model family.

Spec forms (the id shape is the openclip plugin's ``ARCH/TAG``):

- ``eva:EVA02-B-16/merged2b_s8b_b131k`` -- open_clip arch + pretrained tag (weights from the HF Hub through open_clip);
- ``eva:EVA02-B-16`` -- the arch with its default tag (the one LR0.FM used);
- ``{name: eva, arch: EVA02-B-16, checkpoint: /path/EVA02_CLIP_B_psz16_s8B.pt}`` -- a local checkpoint;
- ``{name: eva:BAAI/EVA-CLIP-8B, trust_remote_code: true}`` -- the Hub models with custom code (EVA-CLIP-8B, -8B-448,
  -18B), loaded with ``transformers.AutoModel``; this runs code from the Hub, so the spec must say so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from packaging.version import Version

from lrbench import (
    OPENAI_MEAN,
    OPENAI_STD,
    Finding,
    LrbenchError,
    Preprocess,
    file_fingerprint,
    file_sha256,
    folder_files,
    hookimpl,
    hub_snapshot,
    hub_weights,
    require,
    url_weights,
)

from .adapter import EvaOpenClip, EvaRemoteCode

#: open_clip EVA archs and the pretrained tag LR0.FM evaluated (open_clip's only tag for each)
OPEN_CLIP_EVA: dict[str, str] = {
    "EVA01-g-14": "laion400m_s11b_b41k",
    "EVA01-g-14-plus": "merged2b_s11b_b114k",
    "EVA02-B-16": "merged2b_s8b_b131k",
    "EVA02-L-14": "merged2b_s4b_b131k",
    "EVA02-L-14-336": "merged2b_s6b_b61k",
    "EVA02-E-14": "laion2b_s4b_b115k",
    "EVA02-E-14-plus": "laion2b_s9b_b144k",
}
#: Hub repositories with custom modeling code and their input size (OpenAI CLIP image processor, bicubic, center crop)
HUB_EVA: dict[str, int] = {"BAAI/EVA-CLIP-8B": 224, "BAAI/EVA-CLIP-8B-448": 448, "BAAI/EVA-CLIP-18B": 224}
PRECISIONS = ("fp32", "fp16", "bf16")


def _split_id(ident: str) -> tuple[str, str | None]:
    arch, _, tag = ident.partition("/")
    return arch, tag or None


def _is_open_clip_arch(arch: str) -> bool:
    import open_clip

    return arch in open_clip.list_models()


def _is_hub(id: str | None) -> bool:
    """Whether ``eva:ID`` names a Hub repository with custom code rather than an open_clip ``ARCH[/TAG]``."""
    if id is None:
        return False
    arch, tag = _split_id(id)
    return arch not in OPEN_CLIP_EVA and (id in HUB_EVA or tag is not None and not _is_open_clip_arch(arch))


#: the weight files a custom-code Hub repository may hold (sharded or not); any one means it was downloaded
HUB_WEIGHT_FILES = [
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "model.safetensors",
    "pytorch_model.bin",
]


def _open_clip_cfg(
    id: str | None, arch: str | None, pretrained: str | None, checkpoint: str | None
) -> dict[str, Any] | None:
    """The open_clip pretrained cfg of an entry that loads open_clip weights by tag; None for a checkpoint file, a Hub
    model, or a name open_clip does not know (the loader says why)."""
    if checkpoint is not None or _is_hub(id):
        return None
    if id is not None:
        arch, tag = _split_id(id)
        pretrained = pretrained or tag
    if arch is None:
        return None
    import open_clip

    tag = pretrained or OPEN_CLIP_EVA.get(arch)
    cfg = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
    return cfg or None


def _clip_cache(cache_dir: str | None) -> Path:
    """Where open_clip keeps weights it downloads from a URL."""
    return Path(cache_dir or "~/.cache/clip").expanduser()


def eva_inputs(
    id: str | None = None,
    arch: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Cell-key inputs of an ``eva`` entry, read without loading: the local snapshot a Hub model (or an open_clip tag
    whose weights live on the Hub) resolves to, or the file a URL tag was downloaded to, so weights replaced under the
    same name recompute. A ``checkpoint`` file is hashed by the plan; nothing before the first download."""
    if _is_hub(id):
        folder = Path(id).expanduser()
        return {"local_files": folder_files(folder)} if folder.is_dir() else hub_snapshot(id, revision, cache_dir)
    cfg = _open_clip_cfg(id, arch, pretrained, checkpoint)
    if cfg is None:
        return {}
    if cfg.get("file"):
        path = Path(cfg["file"]).expanduser()
    elif cfg.get("hf_hub"):
        return hub_snapshot(os.path.split(cfg["hf_hub"])[0], None, cache_dir)
    elif cfg.get("url"):
        path = _clip_cache(cache_dir) / os.path.basename(cfg["url"])
    else:
        return {}
    return {"pretrained_file": file_fingerprint(path)} if path.is_file() else {}


def _weights_finding(
    id: str | None,
    arch: str | None,
    pretrained: str | None,
    checkpoint: str | None,
    revision: str | None,
    cache_dir: str | None,
) -> Finding | None:
    """Where the weights an entry loads by name are (found, will download, or missing offline), fetching nothing;
    None for a checkpoint file (checked as a file parameter) or a name open_clip does not know."""
    if _is_hub(id):
        if Path(id).expanduser().is_dir():  # a repository saved to a folder: AutoModel reads it as it is
            return None
        return hub_weights(id, HUB_WEIGHT_FILES, cache_dir, revision, whole_repo=True)
    cfg = _open_clip_cfg(id, arch, pretrained, checkpoint)
    if cfg is None or cfg.get("file"):
        return None
    if cfg.get("hf_hub"):  # open_clip prefers the Hub, and a .safetensors twin of its default .bin
        from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

        repo, filename = os.path.split(cfg["hf_hub"])
        names = [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME] if filename in ("", HF_WEIGHTS_NAME) else [filename]
        return hub_weights(repo, names, cache_dir)
    return url_weights(cfg["url"], _clip_cache(cache_dir)) if cfg.get("url") else None


def eva_check(
    id: str | None = None,
    arch: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    **_: Any,
) -> list[Finding]:
    """What loading an ``eva`` entry would meet, without loading or downloading (``lrbench validate``, dry runs)."""
    finding = _weights_finding(id, arch, pretrained, checkpoint, revision, cache_dir)
    return [finding] if finding is not None else []


def _choices() -> str:
    return ", ".join([f"{a}/{t}" for a, t in OPEN_CLIP_EVA.items()] + list(HUB_EVA))


def load_open_clip(
    arch: str,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    precision: str = "fp32",
    device: str = "cpu",
    cache_dir: str | None = None,
) -> EvaOpenClip:
    """An open_clip EVA model with a pretrained tag (downloaded through open_clip) or a local checkpoint file."""
    import open_clip

    if arch not in open_clip.list_models():
        raise LrbenchError(f"eva: open_clip has no model config {arch!r}; EVA configs: {', '.join(OPEN_CLIP_EVA)}")
    if checkpoint is not None and pretrained is not None:
        raise LrbenchError("eva: give either a pretrained tag or a checkpoint path, not both")
    if checkpoint is not None:
        path = os.path.expanduser(checkpoint)
        if not os.path.isfile(path):
            raise LrbenchError(f"eva: checkpoint {checkpoint!r} is not a file")
        model = open_clip.create_model(arch, pretrained=path, precision=precision, device=device)
        identity = {"family": "eva", "arch": arch, "checkpoint_sha256": file_sha256(path), "precision": precision}
    else:
        tag = pretrained or OPEN_CLIP_EVA.get(arch)
        known = open_clip.list_pretrained_tags_by_model(arch)
        if tag not in known:
            raise LrbenchError(
                f"eva: {arch!r} has no pretrained tag {tag!r}; open_clip knows: {', '.join(known) or 'none'}"
                " (or pass checkpoint: /path/to/weights)"
            )
        finding = _weights_finding(None, arch, tag, None, None, cache_dir)
        if finding is not None:  # offline and not cached: one line now, not hub retries and a traceback
            require(finding, f"eva:{arch}/{tag}")
        model = open_clip.create_model(
            arch, pretrained=tag, precision=precision, device=device, cache_dir=cache_dir, require_pretrained=True
        )
        identity = {"family": "eva", "arch": arch, "pretrained": tag, "precision": precision}
    return EvaOpenClip(model, open_clip.get_tokenizer(arch), identity)


def load_hub(
    repo: str,
    trust_remote_code: bool,
    image_size: int | None = None,
    revision: str | None = None,
    precision: str = "fp32",
    device: str = "cpu",
    cache_dir: str | None = None,
) -> EvaRemoteCode:
    """EVA-CLIP-8B / 18B from their Hub repositories (custom code: ``trust_remote_code`` must be set by the user)."""
    if not trust_remote_code:
        raise LrbenchError(
            f"eva: {repo} is loaded with the repository's own Python code; set trust_remote_code: true in "
            "the model entry to allow it"
        )
    if not Path(repo).expanduser().is_dir():  # offline and not cached: one line now, not hub retries and a traceback
        require(hub_weights(repo, HUB_WEIGHT_FILES, cache_dir, revision, whole_repo=True), f"eva:{repo}")
    try:
        import transformers
    except ImportError:
        raise LrbenchError("eva: Hub EVA-CLIP models need transformers: pip install 'lrbench-plugin-eva[hf]'") from None
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    # transformers >= 4.56 names the argument dtype (torch_dtype is deprecated there)
    dtype_kw = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    module = transformers.AutoModel.from_pretrained(
        repo, revision=revision, trust_remote_code=True, cache_dir=cache_dir, **{dtype_kw: dtype}
    ).to(device)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(repo, revision=revision, cache_dir=cache_dir)
    size = image_size or HUB_EVA.get(repo, 224)
    preprocess = Preprocess(image_size=size, mean=OPENAI_MEAN, std=OPENAI_STD, interpolation="bicubic")
    commit = getattr(module.config, "_commit_hash", None) or revision or "main"
    identity = {"family": "eva", "hub": repo, "revision": commit, "precision": precision, "image_size": size}
    return EvaRemoteCode(module, tokenizer, preprocess, identity)


def eva(
    id: str | None = None,
    arch: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    precision: str = "fp32",
    trust_remote_code: bool = False,
    image_size: int | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> EvaOpenClip | EvaRemoteCode:
    """EVA-CLIP (open_clip EVA01/EVA02 configs, or EVA-CLIP-8B/18B from the Hub)."""
    if precision not in PRECISIONS:
        raise LrbenchError(f"eva: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if id is not None:
        if arch is not None:
            raise LrbenchError(f"eva: give the model either as eva:{id} or with arch: {arch}, not both")
        arch, tag = _split_id(id)
        if _is_hub(id):
            return load_hub(id, trust_remote_code, image_size, revision, precision, cache_dir=cache_dir)
        if tag is not None and pretrained is not None:
            raise LrbenchError(f"eva: the id {id!r} already names the tag {tag!r}; drop pretrained: {pretrained}")
        pretrained = pretrained or tag
    if arch is None:
        raise LrbenchError(f"eva: name a model as eva:ARCH/TAG or with arch:; choices: {_choices()}")
    if image_size is not None or revision is not None or trust_remote_code:
        raise LrbenchError("eva: image_size, revision and trust_remote_code apply to Hub models (eva:BAAI/...) only")
    return load_open_clip(arch, pretrained, checkpoint, precision, cache_dir=cache_dir)


@hookimpl
def register_models(register):
    register(
        "eva",
        eva,
        "EVA-CLIP zero-shot models: eva:ARCH/TAG (open_clip) or eva:BAAI/EVA-CLIP-8B (Hub, custom code)",
        accepts_id=True,
        kind="zero-shot",
        info={"open_clip": [f"{a}/{t}" for a, t in OPEN_CLIP_EVA.items()], "hub": list(HUB_EVA)},
        inputs=eva_inputs,
        check=eva_check,
    )
