"""Where pretrained weights are, before anything is loaded: found locally, will be downloaded, or missing offline.

Model plugins call these from their ``check`` (``lrbench validate`` / ``--dry-run``) and just before loading, so an
offline machine gets one line naming the weights, the path they were expected at and the command that fetches them
within seconds, instead of minutes of hub retries and a long traceback. Nothing here downloads.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from .registry import Finding, LrbenchError

_TRUE = ("1", "true", "yes", "on")


class WeightsMissing(LrbenchError):
    """Weights are neither on this machine nor reachable: the message says which, where, and how to fetch them."""


@lru_cache(maxsize=None)
def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` (or the HTTPS proxy, when one is set) opens within ``timeout`` seconds."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy:
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parsed.hostname or host, parsed.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline(host: str = "huggingface.co") -> bool:
    """``HF_HUB_OFFLINE`` / ``LRBENCH_OFFLINE`` set, or ``host`` unreachable (probed once per process)."""
    if any(
        os.environ.get(v, "").lower() in _TRUE for v in ("LRBENCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return True
    return not reachable(host)


def hub_cache_dir(cache_dir: str | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_weights(
    repo_id: str, filenames: list[str], cache_dir: str | None = None, revision: str | None = None
) -> Finding:
    """Status of a Hugging Face Hub file: the first of ``filenames`` in the local cache, else download or missing."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=revision)
        if isinstance(found, str):
            return Finding("ok", f"{repo_id}/{name} found at {found}")
    folder = hub_cache_dir(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    wanted = f"{repo_id}/{filenames[0]}"
    if offline():
        return Finding(
            "error",
            f"weights {wanted} are not on this machine (expected under {folder}) and the Hub is "
            f"unreachable; fetch them where you are online with `hf download {repo_id} "
            f"{filenames[0]}` and copy {folder} here (or set HF_HOME)",
        )
    return Finding("download", f"will download {wanted} into {folder}")


def url_weights(url: str, folder: str | Path) -> Finding:
    """Status of a weights file fetched from ``url`` into ``folder`` (kept under its URL's file name)."""
    target = Path(folder).expanduser() / os.path.basename(urlparse(url).path)
    if target.is_file():
        return Finding("ok", f"{target.name} found at {target}")
    if offline(urlparse(url).hostname or ""):
        return Finding(
            "error",
            f"weights {target.name} are not on this machine (expected at {target}) and "
            f"{urlparse(url).hostname} is unreachable; fetch them where you are online with "
            f"`curl -L -o {target.name} {url}` and copy the file to {target}",
        )
    return Finding("download", f"will download {url} to {target}")


def require(finding: Finding, model: str) -> None:
    """Raise :class:`WeightsMissing` naming ``model`` when ``finding`` says the weights cannot be had."""
    if finding.level == "error":
        raise WeightsMissing(f"{model}: {finding.message}")


def check_files(params: dict[str, object], names: tuple[str, ...] = ("checkpoint", "weights", "ckpt")) -> list[Finding]:
    """A parameter that names a file (``checkpoint``, ``weights``, ``ckpt``, ``*_path``, ``*_file``) must exist."""
    out = []
    for key, value in params.items():
        if (
            not isinstance(value, str)
            or not value
            or not (key in names or key.endswith(("_path", "_file", "_checkpoint")))
        ):
            continue
        path = Path(value).expanduser()
        if not path.exists():
            out.append(Finding("error", f"{key}: file {str(path)!r} does not exist"))
    return out
