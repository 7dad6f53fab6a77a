"""A model named by ``family:/path/to/file`` reads that file: its content, not its path, is in the cell key, so a
checkpoint replaced under the same name recomputes (issue 13)."""

from __future__ import annotations

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
