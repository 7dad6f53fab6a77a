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

from packaging.version import Version

from lrbench import OPENAI_MEAN, OPENAI_STD, LrbenchError, Preprocess, file_sha256, hookimpl

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
        if arch not in OPEN_CLIP_EVA and (id in HUB_EVA or tag is not None and not _is_open_clip_arch(arch)):
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
    )
