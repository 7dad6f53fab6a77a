"""Reading weight files without running code from them: the one loader every plugin shares.

``torch.load(weights_only=True)`` refuses a pickle that names arbitrary Python objects, but its message suggests
``weights_only=False`` (running the file's code). lrbench never does that: a refused file is a one-line
:class:`CheckpointRefused` naming the file, the global that was refused, and what to do instead.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from .registry import LrbenchError


class CheckpointRefused(LrbenchError):
    """A weights file refused for safety: loading it would run code it names."""

    def __init__(self, path: str | Path, error: BaseException | str):
        self.path = str(path)
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" (it names {found.group(1)})" if found else ""
        super().__init__(
            f"{path}: refused for safety: loading it would run Python code from the file{what}; "
            "re-save it as a plain state dict (torch.save(model.state_dict())) or as .safetensors"
        )


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> Any:
    """The contents of a ``.safetensors`` file or a torch file loaded with ``weights_only=True``.

    Raises :class:`LrbenchError` for a missing file and :class:`CheckpointRefused` for one that needs unpickling code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise LrbenchError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(map_location))
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointRefused(path, exc) from None
