"""Model families ``hf`` (transformers Hub ids or local folders), ``albef`` and ``blip`` (original checkpoints).

- ``hf:openai/clip-vit-base-patch32``, ``hf:google/siglip-base-patch16-224``, ``hf:Salesforce/blip-itm-base-coco``,
  ``hf:/path/to/saved/model``: the config's ``model_type`` picks the adapter (``blip`` -> ITC path of
  ``BlipForImageTextRetrieval``; anything else -> ``AutoModel`` with ``get_image_features``/``get_text_features``).
- ``albef:/path/ALBEF.pth``, ``blip:/path/model_base.pth`` (or ``checkpoint:``): the official ``.pth`` files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from packaging.version import Version

from lrbench import (
    Finding,
    LrbenchError,
    file_sha256,
    folder_files,
    hookimpl,
    hub_snapshot,
    hub_weights,
    load_checkpoint,
    require,
)

from .adapters import HFBlipITC, HFDualEncoder, preprocess_from_image_processor, text_kwargs_for
from .salesforce import SalesforceITC, build_itc_from_state_dict, unwrap_checkpoint

PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def _dtype(precision: str):
    import torch

    if precision not in PRECISIONS:
        raise LrbenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _dtype_kwarg(dtype) -> dict[str, Any]:
    import transformers

    return {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": dtype}


def _weights_identity(model_id: str, config: Any, revision: str | None) -> dict[str, Any]:
    """A Hub id is named by its commit; a local folder by the sha256 of its weight files."""
    folder = Path(os.path.expanduser(model_id))
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.name in WEIGHT_FILES or p.suffix in (".safetensors", ".bin"))
        return {"local_sha256": {p.name: file_sha256(p) for p in files}}
    return {"revision": getattr(config, "_commit_hash", None) or revision or "main"}


def _local_folder(model_id: str) -> Path | None:
    """The folder an ``hf:`` id names (an existing folder, or a path-shaped id), or None for a Hub id (``org/name``)."""
    path = Path(os.path.expanduser(model_id))
    if path.is_dir() or model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1:
        return path
    return None


def hf_inputs(id: str, revision: str | None = None, cache_dir: str | None = None, **_: Any) -> dict[str, Any]:
    """Cell-key inputs of an ``hf`` entry, read without loading: a local folder by the sha256 of its files (weights,
    config, tokenizer); a Hub id by the local snapshot it resolves to (commit and file fingerprints), so weights
    replaced under the same id recompute. A commit-hash ``revision`` names the content itself."""
    folder = _local_folder(id)
    if folder is None:
        return hub_snapshot(id, revision, cache_dir)
    if not folder.is_dir():
        return {}
    return {"local_files": folder_files(folder)}


def hf_check(id: str, revision: str | None = None, cache_dir: str | None = None, **_: Any) -> list[Finding]:
    """What loading an ``hf`` entry would meet, without loading or downloading: a local folder that is not there or
    holds no config / weights; Hub weights found in the cache, to be downloaded, or missing offline."""
    folder = _local_folder(id)
    if folder is None:
        return [hub_weights(id, list(WEIGHT_FILES), cache_dir, revision, whole_repo=True)]
    if not folder.is_dir():
        return [Finding("error", f"local model folder {str(folder)!r} does not exist (a Hub id is written ORG/NAME)")]
    if not (folder / "config.json").is_file():
        return [Finding("error", f"{str(folder)!r} holds no config.json (write the model with save_pretrained)")]
    if not any(p.name in WEIGHT_FILES or p.suffix in (".safetensors", ".bin") for p in folder.iterdir()):
        return [Finding("error", f"{str(folder)!r} holds no weights ({', '.join(WEIGHT_FILES)})")]
    return [Finding("ok", f"hf:{id} found at {folder}")]


def salesforce_check(
    id: str | None = None, checkpoint: str | None = None, tokenizer: str = "bert-base-uncased", **_: Any
) -> list[Finding]:
    """What loading an ``albef`` / ``blip`` entry would meet: the checkpoint file its id or ``checkpoint`` names, and
    the BERT tokenizer it fetches from the Hub by name (found, will download, or missing offline)."""
    path = checkpoint or id
    out = []
    if path is not None and not os.path.isfile(os.path.expanduser(path)):
        out.append(Finding("error", f"checkpoint {path!r} is not a file (download the official .pth; see docs/hf.md)"))
    if _local_folder(tokenizer) is None:
        out.append(hub_weights(tokenizer, ["vocab.txt"], whole_repo=True))
    return out


def hf(
    id: str,
    revision: str | None = None,
    precision: str = "fp32",
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
) -> HFDualEncoder | HFBlipITC:
    """A transformers zero-shot model: CLIP, SigLIP, BLIP (ITC), or any model with get_image/text_features."""
    import transformers

    dtype = _dtype(precision)
    for finding in hf_check(id, revision, cache_dir):  # offline and not cached: one line now, not a hub traceback
        require(finding, f"hf:{id}")
    common = {"revision": revision, "cache_dir": cache_dir, "trust_remote_code": trust_remote_code}
    config = transformers.AutoConfig.from_pretrained(id, **common)
    model_type = getattr(config, "model_type", "")
    if model_type == "blip":
        model = transformers.BlipForImageTextRetrieval.from_pretrained(id, **common, **_dtype_kwarg(dtype))
        adapter_cls: type = HFBlipITC
    else:
        model = transformers.AutoModel.from_pretrained(id, **common, **_dtype_kwarg(dtype))
        missing = [m for m in ("get_image_features", "get_text_features") if not hasattr(model, m)]
        if missing:
            raise LrbenchError(
                f"hf:{id} loads as {type(model).__name__}, which has no {' / '.join(missing)}; "
                "the hf family needs a dual encoder (CLIP, SigLIP, AltCLIP, ...) or a BLIP model"
            )
        adapter_cls = HFDualEncoder
    tokenizer = transformers.AutoTokenizer.from_pretrained(id, **common)
    processor = transformers.AutoImageProcessor.from_pretrained(id, **common)
    text_kwargs = (
        {"padding": True, "truncation": True, "max_length": 35}
        if adapter_cls is HFBlipITC
        else text_kwargs_for(model_type, tokenizer)
    )
    identity = {
        "family": "hf",
        "id": id,
        "class": type(model).__name__,
        "precision": precision,
        **_weights_identity(id, config, revision),
    }
    return adapter_cls(model, tokenizer, preprocess_from_image_processor(processor), identity, text_kwargs)


def _salesforce(
    family: str, id: str | None, checkpoint: str | None, image_size: int, tokenizer: str, precision: str
) -> SalesforceITC:
    import transformers

    path = checkpoint or id
    if path is None or (checkpoint and id):
        raise LrbenchError(
            f"{family}: give the checkpoint once, as {family}:/path/file.pth or checkpoint: /path/file.pth"
        )
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise LrbenchError(f"{family}: checkpoint {path!r} is not a file (download the official .pth; see docs/hf.md)")
    state = unwrap_checkpoint(load_checkpoint(path))
    model = build_itc_from_state_dict(state, family, image_size).to(_dtype(precision))
    if _local_folder(tokenizer) is None:  # offline and not cached: one line now, not a hub traceback
        require(hub_weights(tokenizer, ["vocab.txt"], whole_repo=True), f"{family} tokenizer")
    tok = transformers.BertTokenizer.from_pretrained(tokenizer)
    identity = {
        "family": family,
        "checkpoint_sha256": file_sha256(path),
        "image_size": image_size,
        "tokenizer": tokenizer,
        "precision": precision,
    }
    return SalesforceITC(model, tok, image_size, identity)


def albef(
    id: str | None = None,
    checkpoint: str | None = None,
    image_size: int = 384,
    tokenizer: str = "bert-base-uncased",
    precision: str = "fp32",
) -> SalesforceITC:
    """ALBEF from an official checkpoint (ALBEF.pth, ALBEF_4M.pth, LAVIS retrieval files): timm ViT + BERT."""
    return _salesforce("albef", id, checkpoint, image_size, tokenizer, precision)


def blip(
    id: str | None = None,
    checkpoint: str | None = None,
    image_size: int = 384,
    tokenizer: str = "bert-base-uncased",
    precision: str = "fp32",
) -> SalesforceITC:
    """BLIP from an original checkpoint (model_base_14M.pth, model_base.pth, ...): timm ViT + BERT, ITC path."""
    return _salesforce("blip", id, checkpoint, image_size, tokenizer, precision)


@hookimpl
def register_models(register):
    register(
        "hf",
        hf,
        "transformers zero-shot models: hf:HUB_ID or hf:/local/folder (CLIP, SigLIP, BLIP ITC, ...)",
        accepts_id=True,
        kind="zero-shot",
        info={"library": "transformers"},
        inputs=hf_inputs,
        check=hf_check,
    )
    register(
        "albef",
        albef,
        "ALBEF from an official checkpoint: albef:/path/ALBEF.pth (ITC path, timm ViT + BERT)",
        accepts_id=True,
        kind="zero-shot",
        check=salesforce_check,
        info={"image_size": 384},
    )
    register(
        "blip",
        blip,
        "BLIP from an original checkpoint: blip:/path/model_base.pth (ITC path, timm ViT + BERT)",
        accepts_id=True,
        kind="zero-shot",
        check=salesforce_check,
        info={"image_size": 384},
    )
