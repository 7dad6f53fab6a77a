"""lrbench plugin: open_clip models (``openclip:ID``) and the toy CLIP (``toy-clip``)."""

from pathlib import Path

from lrbench import Finding, hookimpl, hub_snapshot

from .adapter import (
    RANDOM,
    OpenClipAdapter,
    OpenClipError,
    load_openclip,
    local_dir_inputs,
    parse_id,
    pretrained_inputs,
    weights_status,
)
from .toy import TOY_DIR, toy_clip


def openclip(
    id: str | None = None,
    arch: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    precision: str = "fp32",
    quick_gelu: bool | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
) -> OpenClipAdapter:
    """An open_clip model: ``openclip:ARCH/TAG``, ``openclip:ARCH@/path/ckpt``, ``openclip:hf-hub:org/name``,
    ``openclip:local-dir:/folder``, or the long form with ``arch`` / ``pretrained`` / ``checkpoint``."""
    params = {"arch": arch, "pretrained": pretrained, "checkpoint": checkpoint}
    if id is not None:
        for key, value in parse_id(id).items():
            if params[key] not in (None, value):
                raise OpenClipError(
                    f"openclip:{id} sets {key}={value!r} but the entry also gives {key}={params[key]!r}"
                )
            params[key] = value
    if params["arch"] is None:
        raise OpenClipError(
            "openclip needs an architecture: openclip:ARCH/TAG or {name: openclip, arch: ..., pretrained: ...}"
        )
    return load_openclip(
        params["arch"],
        pretrained=params["pretrained"],
        checkpoint=params["checkpoint"],
        precision=precision,
        quick_gelu=quick_gelu,
        seed=seed,
        cache_dir=cache_dir,
    )


def openclip_inputs(
    id: str | None = None,
    arch: str | None = None,
    pretrained: str | None = None,
    cache_dir: str | None = None,
    **_: object,
) -> dict[str, object]:
    """Cell-key inputs of an ``openclip`` entry: the folder of a ``local-dir:`` model, the downloaded weights file
    an ``ARCH/TAG`` model loads by name, or the local snapshot an ``hf-hub:`` model resolves to (a re-downloaded or
    replaced file gives new cells)."""
    parsed = parse_id(id) if id is not None else {"arch": arch, "pretrained": pretrained}
    arch, pretrained = parsed.get("arch"), parsed.get("pretrained", pretrained)
    if arch and arch.startswith("hf-hub:"):
        return hub_snapshot(arch[len("hf-hub:") :], None, cache_dir)
    if arch and pretrained and pretrained != RANDOM and not arch.startswith(("local-dir:", "hf-hub:")):
        return pretrained_inputs(arch, pretrained, cache_dir)
    return local_dir_inputs(arch)


def openclip_check(
    id: str | None = None,
    arch: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    cache_dir: str | None = None,
    **_: object,
) -> list[Finding]:
    """What loading an ``openclip`` entry would meet, found without loading or downloading anything."""
    params = {"arch": arch, "pretrained": pretrained, "checkpoint": checkpoint}
    if id is not None:
        params.update({k: v for k, v in parse_id(id).items() if params.get(k) is None})
    if params["arch"] is None:
        return [Finding("error", "openclip needs an architecture: openclip:ARCH/TAG")]
    if params["checkpoint"] is not None:
        path = Path(params["checkpoint"]).expanduser()
        return [] if path.is_file() else [Finding("error", f"checkpoint file {str(path)!r} does not exist")]
    if params["arch"].startswith("local-dir:"):
        folder = Path(params["arch"][len("local-dir:") :]).expanduser()
        ok = (folder / "open_clip_config.json").is_file()
        return [] if ok else [Finding("error", f"local-dir {str(folder)!r} holds no open_clip_config.json")]
    status = weights_status(params["arch"], params["pretrained"], None, cache_dir)
    return [status] if status is not None else []


def toy_clip_inputs(**_: object) -> dict[str, object]:
    """Cell-key inputs of ``toy-clip``: the shipped folder (retrained weights give new cells, not stale ones)."""
    return local_dir_inputs(f"local-dir:{TOY_DIR}")


@hookimpl
def register_models(register):
    register(
        "openclip",
        openclip,
        "open_clip zero-shot models: ARCH/TAG, ARCH@checkpoint, hf-hub:org/name, local-dir:/folder",
        kind="zero-shot",
        info={"library": "open_clip_torch"},
        accepts_id=True,
        inputs=openclip_inputs,
        check=openclip_check,
    )
    register(
        "toy-clip",
        toy_clip,
        "Tiny CLIP (ViT 64/8, 128 wide) trained on the toy world; offline, shipped weights",
        kind="zero-shot",
        info={"input_size": 64},
        inputs=toy_clip_inputs,
    )
