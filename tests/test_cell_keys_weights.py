"""Cell keys and the weights a model reads (issue 13): a model named by ``family:/path/to/file`` is keyed by the
file's content, not its path, so a checkpoint replaced under the same name recomputes; and weights that change while a
model is built are never cached under the key of the weights the run was planned with."""

from __future__ import annotations

import pytest

from lrbench import hookimpl
from lrbench.plan import entry_identity
from lrbench.plugins import Plugins
from lrbench.spec import Item


def _family(id: str, image_size: int = 224) -> None:
    """A family whose id is a checkpoint path (as ``albef:`` / ``blip:``); never built here."""


class FilePlugin:
    @hookimpl
    def register_models(self, register):
        register("ckpt", _family, "a family named by a checkpoint file", accepts_id=True, kind="zero-shot")


def test_a_checkpoint_named_by_the_id_keys_the_cells_by_its_content(tmp_path):
    plugins = Plugins(load_entry_points=False, extra=[(FilePlugin(), "file-plugin")])
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"first weights")
    item = Item("models", f"ckpt:{ckpt}")
    other = Item("models", "ckpt:not-a-file")
    first, other_first = entry_identity(plugins, item), entry_identity(plugins, other)
    assert first["id_file"]["file"] == str(ckpt)
    ckpt.write_bytes(b"other weights")
    second = entry_identity(plugins, item)
    assert first["id_file"]["sha256"] != second["id_file"]["sha256"]
    assert {k: v for k, v in first.items() if k != "id_file"} == {k: v for k, v in second.items() if k != "id_file"}
    assert entry_identity(plugins, other) == other_first and "id_file" not in other_first  # a name stays a name


WEIGHTS: dict[str, object] = {}


def _named_inputs(**_: object) -> dict[str, object]:
    """What a model loaded by name reads: the file it resolves to (as ``hub_snapshot`` reports a Hub cache)."""
    path = WEIGHTS["path"]
    return {"weights": path.read_text()} if path.exists() else {}


def _named_model(**_: object):
    """Loads its weights by name; the first build fetches a newer version first (an online Hub id, no revision)."""
    from .conftest import TinyZeroShot

    if WEIGHTS.pop("update", False):
        WEIGHTS["path"].write_text("v2")
    return TinyZeroShot()


class NamedPlugin:
    @hookimpl
    def register_models(self, register):
        register("named", _named_model, "weights by name", kind="zero-shot", inputs=_named_inputs)


def test_weights_that_change_while_the_model_is_built_are_not_cached_under_the_old_key(tmp_path):
    """The plan keys the cells by the weights on this machine; a library that fetches a newer version while building
    the model would put the new weights' numbers under the old key. The unit fails instead, and the next run keys and
    computes them by the new weights."""
    import pandas as pd

    from lrbench.runner import CellsFailed, run_spec

    from .conftest import TestPlugin

    plugins = Plugins(load_entry_points=False, extra=[(TestPlugin(), "test-plugin"), (NamedPlugin(), "named")])
    WEIGHTS.update(path=tmp_path / "weights.txt", update=True)
    WEIGHTS["path"].write_text("v1")
    spec = {"models": ["named", "tiny"], "datasets": [{"name": "toyworld", "n": 4}], "conditions": ["hr"]}
    with pytest.raises(CellsFailed, match="'named': its weights changed after the run was planned"):
        run_spec(spec, tmp_path / "a", plugins=plugins, cache_dir=tmp_path / "c")
    assert set(pd.read_csv(tmp_path / "a" / "results.csv")["model"]) == {"tiny"}  # the other model still ran
    run_spec(spec, tmp_path / "b", plugins=plugins, cache_dir=tmp_path / "c")  # keyed by v2 now, and computed
    assert set(pd.read_csv(tmp_path / "b" / "results.csv")["model"]) == {"named", "tiny"}
