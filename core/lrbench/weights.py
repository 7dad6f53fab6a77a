"""Where pretrained weights are, before anything is loaded: found locally, will be downloaded, or missing offline.

Model plugins call these from their ``check`` (``lrbench validate`` / ``--dry-run``) and just before loading, so an
offline machine gets one line naming the weights, the path they were expected at and the command that fetches them
within seconds, instead of minutes of hub retries and a long traceback. Nothing here downloads.
"""

from __future__ import annotations

import os
import re
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from .cache import file_sha256_memo
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
    repo_id: str,
    filenames: list[str],
    cache_dir: str | None = None,
    revision: str | None = None,
    whole_repo: bool = False,
) -> Finding:
    """Status of a Hugging Face Hub file: the first of ``filenames`` in the local cache, else download or missing.
    ``whole_repo``: the model needs the repository's other files too (config, tokenizer), so the fetch command the
    message gives downloads all of it."""
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
            f"unreachable; fetch them where you are online with `hf download {repo_id}"
            f"{'' if whole_repo else ' ' + filenames[0]}{f' --revision {revision}' if revision else ''}` "
            f"and copy {folder} here (or set HF_HOME)",
        )
    return Finding("download", f"will download {wanted} into {folder}")


def file_fingerprint(path: str | Path) -> str:
    """A cheap identity of a weights file for cell keys: the real file's name (in the Hugging Face cache a blob named
    by its content hash), size and modification time, so a replaced or re-downloaded file is a new cell without
    hashing gigabytes at every plan."""
    real = Path(path).expanduser().resolve()
    st = real.stat()
    return f"{real.name}:{st.st_size}:{st.st_mtime_ns}"


def folder_files(folder: str | Path) -> dict[str, str]:
    """Cell-key inputs of a model saved in a folder (``save_pretrained``: weights, config, tokenizer side by side):
    the sha256 of each file directly in it, hashed once per process and file version."""
    return {p.name: file_sha256_memo(p) for p in sorted(Path(folder).expanduser().iterdir()) if p.is_file()}


def hub_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> dict[str, object]:
    """Cell-key inputs of a model loaded by Hub id: the commit the local cache resolves ``revision`` (default
    ``main``) to and a fingerprint of every file of that snapshot, so a newer download under the same id gives new
    cells. Empty when ``revision`` is a commit hash (the name pins the content) or nothing is downloaded yet (the name
    stands for it until then). Reads only the cache folder; nothing is fetched."""
    if revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        return {}
    repo = hub_cache_dir(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else None
    snapshot = repo / "snapshots" / (commit or "")
    if commit is None or not snapshot.is_dir():
        return {}
    files = sorted(p for p in snapshot.rglob("*") if p.is_file())
    return {
        "hub_snapshot": {
            "commit": commit,
            "files": {str(p.relative_to(snapshot)): file_fingerprint(p) for p in files},
        }
    }


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
