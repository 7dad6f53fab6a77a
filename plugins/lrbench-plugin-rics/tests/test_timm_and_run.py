"""The timm adapter (random-init, offline) and an end-to-end ``run_spec`` of the shift task."""

import numpy as np
import pytest
import torch
from lrbench_rics.timm_models import TimmAdapter, load_state_dict

from lrbench.runner import run_spec


def test_timm_classifier_and_embedder(tmp_path):
    clf = TimmAdapter("resnet10t", num_classes=7, image_size=32, seed=1)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert clf.classify(x).shape == (2, 7)
        assert clf.encode_image(x).shape == (2, clf.module.num_features)
    assert clf.identity()["weights"].startswith("random-init:seed=1")
    assert clf.preprocess.image_size == 32 and clf.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    # a local checkpoint reloads the same weights and keys the identity by file hash
    path = tmp_path / "w.pt"
    torch.save({"state_dict": clf.module.state_dict()}, path)
    again = TimmAdapter("resnet10t", num_classes=7, image_size=32, seed=2, checkpoint=str(path))
    with torch.no_grad():
        assert torch.allclose(again.classify(x), clf.classify(x))
    assert again.identity()["weights"].startswith("sha256:") and set(load_state_dict(path)) == set(
        clf.module.state_dict()
    )
    emb = TimmAdapter("resnet10t", kind="embedder", image_size=32)
    with pytest.raises(NotImplementedError, match="embedder"):
        emb.classify(x)
    with pytest.raises(ValueError, match="choices: classifier, embedder"):
        TimmAdapter("resnet10t", kind="detector")


def test_run_spec_table1_shape(tmp_path):
    spec = {
        "name": "rics-e2e",
        "models": [{"name": "timm:resnet10t", "kind": "embedder", "image_size": 32, "label": "r10t"}],
        "methods": ["none", {"name": "rics/cyclic", "k": 20, "score": "rand"}],
        "datasets": [{"name": "toyworld", "split": "test", "n": 4}],
        "conditions": [
            {"name": "shift", "max_shift": 1, "resize": 37, "crop": 32, "axes": "x"},
            {"name": "cyclic", "max_shift": 1, "size": 32, "axes": "x"},
        ],
        "task": {"name": "shift", "gallery": {"name": "toyworld", "split": "train", "n": 24}},
    }
    df = run_spec(spec, tmp_path / "run", device="cpu", cache_dir=tmp_path / "cache")
    assert set(df.metric) >= {"consistency", "adv_robustness", "consistency_nn", "adv_robustness_nn", "shift_acc"}
    assert len(df) == 2 * 2 * 5  # methods x conditions x default metrics
    cell = df[(df.condition == "cyclic@1(size=32,axes=x)") & df.method.str.contains("cyclic")]
    assert set(
        cell.set_index("metric").loc[["consistency", "adv_robustness", "consistency_nn", "adv_robustness_nn"], "value"]
    ) == {1.0}
    assert (df.n == 4).all()
    values = df.value.to_numpy(dtype=float)
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
