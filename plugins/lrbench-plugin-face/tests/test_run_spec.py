"""End to end through the core runner: a tiny IResNet on generated pairs, cross and equal resolution, cached rerun."""

import numpy as np
from lrbench_face import plugin

from lrbench.plugins import Plugins
from lrbench.runner import run_spec

SPEC = {
    "models": [
        {
            "name": "face-iresnet:r18",
            "label": "tiny",
            "base_width": 4,
            "image_size": 16,
            "embedding_size": 16,
            "layers": [1, 1, 1, 1],
        }
    ],
    "methods": ["none"],
    "datasets": [{"name": "toyfaces-pairs", "identities": 6, "pairs": 20}],
    "conditions": ["hr", "face-lr@8", {"name": "face-lr", "size": 8, "mode": "equal"}, "face-protocol@low"],
    "metrics": ["face_acc", "roc_auc", "face_dist"],
}


def test_run_spec_verification(tmp_path):
    plugins = Plugins(load_entry_points=False, extra=[(plugin, "face")])
    df = run_spec(SPEC, tmp_path / "out", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    conds = set(df["condition"])
    assert {"hr", "face-lr@8", "face-lr@8(mode=equal)", "face-protocol@low"} <= conds
    acc = df[df["metric"] == "face_acc"].set_index("condition")["value"]
    assert ((acc >= 0) & (acc <= 1)).all() and len(acc) == 4
    assert {"face_acc.std", "face_acc.threshold", "face_dist.genuine", "roc_auc"} <= set(df["metric"])
    assert set(df["n"]) == {20}  # every one of the 20 pairs scored, in every cell (it was 0 before the cell contract)
    again = run_spec(SPEC, tmp_path / "out2", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(
        again.sort_values(["condition", "metric"])["value"].to_numpy(),
        df.sort_values(["condition", "metric"])["value"].to_numpy(),
    )


def test_training_data_keys_the_cells(tmp_path):
    """A face training method's cells are keyed by its training data: another identity in the training folder means
    another backbone, so other cells; the baseline's cells keep their keys (planned only: nothing trains)."""
    from PIL import Image

    def add_identity(i: int) -> None:
        (folder / f"id{i}").mkdir()
        for j in range(2):
            Image.new("RGB", (16, 16), (40 * i, 20 * j, 0)).save(folder / f"id{i}" / f"{j}.png")

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(2):
        add_identity(i)
    spec = dict(
        SPEC,
        conditions=["hr"],
        methods=["none", {"name": "face/maug", "label": "maug", "train": {"data": str(folder), "epochs": 1}}],
    )
    plugins = Plugins(load_entry_points=False, extra=[(plugin, "face")])

    def keys() -> dict[str, str]:
        plan = run_spec(
            spec, tmp_path / "run", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache", dry_run=True
        )
        return dict(zip(plan["method"], plan["key"]))

    before = keys()
    assert keys() == before
    add_identity(2)
    after = keys()
    assert after["none"] == before["none"] and after["maug"] != before["maug"]
