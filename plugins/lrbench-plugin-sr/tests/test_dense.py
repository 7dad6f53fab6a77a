"""Segmentation and detection: metrics against hand-computed values, the toy world's exact masks and boxes, the VOC /
COCO root errors, and a spec through ``lrbench run`` for each task."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from lrbench_sr.dense import confusion, iou_per_class, mean_average_precision, mean_iou, pixel_accuracy
from lrbench_sr.dense_data import CocoDetection, ToyDetection, ToySegmentation, VOCSegmentation
from scipy.ndimage import binary_dilation, binary_erosion

from lrbench.builtin.toyworld import ToyWorld, render
from lrbench.plugins import Plugins
from lrbench.registry import LrbenchError


def test_confusion_miou_and_pixel_accuracy_by_hand():
    target = torch.tensor([[0, 0, 1], [1, 2, 255], [2, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0], [0, 2, 1]])
    m = confusion(pred, target, 3)
    # rows: truth, columns: prediction; the two 255 pixels are not counted
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 2 / (3 + 2 - 2) = 2/3
    assert np.allclose(iou_per_class(m), [1 / 3, 2 / 3, 2 / 3])
    assert mean_iou(m) == pytest.approx(5 / 9)
    assert pixel_accuracy(m) == pytest.approx(5 / 7)
    # a class absent from truth and predictions is left out of the mean, not counted as 0
    m4 = confusion(pred, target, 4)
    assert np.isnan(iou_per_class(m4)[3]) and mean_iou(m4) == pytest.approx(5 / 9)


def test_miou_agrees_with_torchmetrics_jaccard():
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 20, 20), generator=g)
    target[:, :2] = 255
    pred = torch.randint(0, 5, (3, 20, 20), generator=g)
    summed = sum(confusion(p, t, 5) for p, t in zip(pred, target))
    ref = MulticlassJaccardIndex(5, ignore_index=255, average="macro")(pred, target)
    assert mean_iou(summed) == pytest.approx(float(ref), abs=1e-6)


def _det_cell(preds, gts):
    """A detection cell's arrays from per-image lists of (box, score, label) and (box, label)."""
    out = {k: [] for k in ("boxes", "scores", "labels", "image", "gt_boxes", "gt_labels", "gt_crowd", "gt_image")}
    for p, items in enumerate(preds):
        for box, score, label in items:
            out["boxes"].append(box), out["scores"].append(score), out["labels"].append(label), out["image"].append(p)
    for p, items in enumerate(gts):
        for box, label in items:
            out["gt_boxes"].append(box), out["gt_labels"].append(label), out["gt_crowd"].append(False)
            out["gt_image"].append(p)
    arrays = {k: np.asarray(v, dtype=np.float32 if "box" in k or k == "scores" else np.int64) for k, v in out.items()}
    arrays["boxes"] = arrays["boxes"].reshape(-1, 4)
    arrays["gt_crowd"] = arrays["gt_crowd"].astype(bool)
    return arrays


def test_map_by_hand():
    # one image, two ground-truth boxes of class 1; an exact hit (0.9) and a false positive (0.8): recall reaches 0.5
    # at precision 1, so COCO's 101-point AP = 51 / 101 at every IoU threshold
    cell = _det_cell(
        [[([0, 0, 10, 10], 0.9, 1), ([50, 50, 60, 60], 0.8, 1)]],
        [[([0, 0, 10, 10], 1), ([20, 20, 30, 30], 1)]],
    )
    r = mean_average_precision(cell, 1)
    assert r["map"] == pytest.approx(51 / 101, abs=1e-4) and r["map50"] == pytest.approx(51 / 101, abs=1e-4)
    # one box of IoU 0.62 with the only ground truth: a hit at thresholds 0.50, 0.55, 0.60 only -> mAP 3/10
    # (box [0, 0, 10, 6.2] inside [0, 0, 10, 10]: IoU = 62 / 100)
    cell = _det_cell([[([0, 0, 10, 6.2], 0.7, 2)]], [[([0, 0, 10, 10], 2)]])
    r = mean_average_precision(cell, 1)
    assert r["map"] == pytest.approx(0.3, abs=1e-4) and r["map50"] == pytest.approx(1.0)
    # the wrong class is no hit
    cell = _det_cell([[([0, 0, 10, 10], 0.7, 3)]], [[([0, 0, 10, 10], 2)]])
    assert mean_average_precision(cell, 1)["map"] == pytest.approx(0.0)


class _Context:
    """The plugin context a toy dense dataset builds its ``toyworld`` through."""

    def create(self, kind, name, **params):
        assert (kind, name) == ("datasets", "toyworld")
        return ToyWorld(**params)


def _plain_item(split_n=40):
    """A toy item with a plain texture (one colour over the whole shape) and its shape's colour."""
    from lrbench.builtin.toyworld import COLOURS

    toy = ToyWorld("test", n=split_n)
    for i in range(split_n):
        caption = render(toy._seed(i))[2]
        if " plain " in caption:
            colour = next(v for k, v in COLOURS.items() if f" {k} plain " in caption)
            return i, colour
    raise AssertionError("no plain item")


def test_toy_segmentation_mask_is_the_drawn_shape():
    ds = ToySegmentation(_Context(), split="test", n=40)
    i, colour = _plain_item()
    image = np.asarray(ds.load(i)).astype(int)
    target = ds.target(i)
    assert set(np.unique(target)) == {0, ds.labels[i] + 1}
    assert ds.num_classes == 13 and ds.classnames[0] == "background"
    inside = target > 0
    core = binary_erosion(inside, iterations=2)
    ring = binary_dilation(inside, iterations=3) & ~binary_dilation(inside, iterations=1)
    # every pixel 2 px inside the mask has the shape's colour exactly; beyond the 0.6 px edge softening, none does
    assert (np.abs(image[core] - colour).max(axis=1) == 0).all()
    assert (np.abs(image[ring] - colour).max(axis=1) > 0).mean() > 0.95


def test_toy_detection_box_is_the_tight_box_of_the_mask():
    seg = ToySegmentation(_Context(), split="test", n=6, size=112)
    det = ToyDetection(_Context(), split="test", n=6, size=112)
    assert det.num_classes == 13 and len(det.classnames) == 12
    for i in range(6):
        mask = seg.target(i) > 0
        t = det.target(i)
        x0, y0, x1, y1 = t["boxes"][0]
        ys, xs = np.nonzero(mask)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert t["labels"].tolist() == [seg.labels[i] + 1]
        assert det.load(i).size == (112, 112)


def test_voc_and_coco_roots_name_the_layout(tmp_path):
    with pytest.raises(LrbenchError, match="SegmentationClass") as err:
        VOCSegmentation(str(tmp_path))
    assert "never downloads" in str(err.value)
    with pytest.raises(LrbenchError, match="instances_val2017.json|val2017"):
        CocoDetection(str(tmp_path))


def test_coco_detection_reads_boxes_and_categories(tmp_path):
    from PIL import Image

    (tmp_path / "val2017").mkdir()
    (tmp_path / "annotations").mkdir()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "val2017" / "a.jpg")
    ann = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 4, 10, 6], "area": 60, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [5, 5, 0, 3], "area": 0, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(ann))
    ds = CocoDetection(str(tmp_path))
    assert len(ds) == 1 and ds.num_classes == 4 and ds.classnames == ["person", "unused-2", "car"]
    t = ds.target(0)  # xywh -> xyxy; the zero-width box is dropped
    assert t["boxes"].tolist() == [[2, 4, 12, 10]] and t["labels"].tolist() == [3]
    assert ds.load(0).size == (40, 30)


def _run(tmp_path, spec: dict) -> pd.DataFrame:
    from lrbench.cli import cli

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))  # JSON is YAML
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", str(path), "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    return pd.read_csv(out / "results.csv")


def test_segmentation_spec_through_lrbench_run(tmp_path):
    spec = {
        "models": [{"name": "torchvision-seg:deeplabv3_mobilenet_v3_large", "random_init": True, "num_classes": 13}],
        "methods": [
            "none",
            {"name": "sr/edsr-baseline-x4", "random_init": True, "options": {"num_feat": 8, "num_block": 1}},
        ],
        "datasets": [{"name": "toyworld-seg", "n": 2, "size": 32}],
        "conditions": ["hr", "srdown@4"],
    }
    df = _run(tmp_path, spec)
    assert set(df["task"]) == {"segmentation"} and set(df["metric"]) == {"miou", "pixel_acc"}
    assert len(df) == 2 * 2 * 2 and (df["n"] == 2).all()
    assert df["value"].between(0, 1).all()


def test_detection_spec_through_lrbench_run(tmp_path):
    spec = {
        "models": [
            {
                "name": "torchvision-det:fasterrcnn_mobilenet_v3_large_fpn",
                "random_init": True,
                "num_classes": 13,
                "min_size": 64,
                "max_size": 64,
            }
        ],
        "methods": ["none"],
        "datasets": [{"name": "toyworld-det", "n": 2, "size": 64}],
        "conditions": ["hr", "srdown@4"],
    }
    df = _run(tmp_path, spec)
    assert set(df["task"]) == {"detection"} and set(df["metric"]) == {"map", "map50"}
    assert len(df) == 2 * 2 and df["value"].between(0, 1).all()


def test_torchvision_model_without_weights_refuses():
    plugins = Plugins()
    with pytest.raises(LrbenchError, match="random_init"):
        plugins.registries["models"].create("torchvision-seg:deeplabv3_mobilenet_v3_large")


def test_torchvision_weights_are_checked_without_building(tmp_path, monkeypatch):
    """validate's view of a torchvision entry: a tag's file found in the torch hub cache, or an unknown tag."""
    from lrbench_sr.dense import check_torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "deeplabv3_mobilenet_v3_large-fc3c493d.pth").write_bytes(b"x")
    found = check_torchvision("deeplabv3_mobilenet_v3_large", pretrained="COCO_WITH_VOC_LABELS_V1")
    assert [f.level for f in found] == ["ok"]
    bad = check_torchvision("deeplabv3_mobilenet_v3_large", pretrained="NOPE")
    assert [f.level for f in bad] == ["error"] and "NOPE" in bad[0].message


def test_what_changes_the_outputs_keys_the_cells():
    """The task's HR resize and the toy set's image size change every output: both are in the identities the cell
    keys hash; the same parameters give the same identity."""
    from lrbench_sr.dense import Detection, Segmentation

    assert Segmentation().identity() == Segmentation().identity() != Segmentation(resize=520).identity()
    assert Detection().identity() != Detection(resize=480).identity()
    seg = lambda **kw: ToySegmentation(_Context(), n=3, **kw).identity()  # noqa: E731
    assert seg(size=32) == seg(size=32) != seg(size=48)
    assert seg(size=32) != ToyDetection(_Context(), n=3, size=32).identity()
