"""The dataset part of a cell key covers every input that changes an output: the entry's parameters, the class names
and templates the task used, and the item files' (path, size, mtime); an unchanged re-run computes nothing (issue 13)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from lrbench.runner import run_spec

CLASSES = ["circle", "square", "triangle"]


def _images(root):
    rng = np.random.default_rng(0)
    rows = []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            arr = (rng.random((16, 16, 3)) * 255 * (c + 1) / 3).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
            rows.append(f"{name}/{i}.png,{name}")
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root


def _spec(dataset):
    return {"name": "k", "models": ["tiny"], "datasets": [dataset], "conditions": ["hr", "bicubic@8"], "batch_size": 4}


def _run(plugins, cache_dir, tmp_path, dataset, tag):
    return run_spec(_spec(dataset), tmp_path / f"run-{tag}", plugins=plugins, cache_dir=cache_dir)


def test_csv_classnames_change_recomputes_and_gives_the_true_value(plugins, cache_dir, tmp_path):
    root = _images(tmp_path / "data")
    ds = {"name": "csv", "root": str(root), "classnames": CLASSES}
    first = _run(plugins, cache_dir, tmp_path, ds, "a")
    assert len(first.attrs["computed"]) == 2
    assert _run(plugins, cache_dir, tmp_path, ds, "b").attrs["computed"] == []
    reversed_ds = dict(ds, classnames=CLASSES[::-1])  # labels now index other names: other text embeddings
    second = _run(plugins, cache_dir, tmp_path, reversed_ds, "c")
    assert len(second.attrs["computed"]) == 2
    fresh = run_spec(_spec(reversed_ds), tmp_path / "fresh", plugins=plugins, cache_dir=tmp_path / "fresh-cache")
    assert second["value"].tolist() == fresh["value"].tolist()


def test_imagefolder_templates_change_recomputes_only_that_dataset(plugins, cache_dir, tmp_path):
    root = _images(tmp_path / "data")
    os.remove(root / "labels.csv")
    ds = {"name": "imagefolder", "root": str(root)}
    _run(plugins, cache_dir, tmp_path, ds, "a")
    templated = _run(plugins, cache_dir, tmp_path, dict(ds, templates=["a drawing of a {c}."]), "b")
    assert len(templated.attrs["computed"]) == 2


def test_a_replaced_image_recomputes(plugins, cache_dir, tmp_path):
    root = _images(tmp_path / "data")
    ds = {"name": "csv", "root": str(root)}
    _run(plugins, cache_dir, tmp_path, ds, "a")
    victim = root / "square" / "1.png"
    Image.new("RGB", (16, 16), (255, 255, 255)).save(victim)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a clearly different mtime even on coarse clocks
    assert len(_run(plugins, cache_dir, tmp_path, ds, "b").attrs["computed"]) == 2
    assert _run(plugins, cache_dir, tmp_path, ds, "c").attrs["computed"] == []


def test_every_entry_parameter_is_in_the_key(plugins, cache_dir, tmp_path):
    """num_classes is not in the dataset's own params(): the spec entry's parameters key the cells all the same."""
    root = _images(tmp_path / "data")
    ds = {"name": "csv", "root": str(root)}
    _run(plugins, cache_dir, tmp_path, ds, "a")
    assert len(_run(plugins, cache_dir, tmp_path, dict(ds, num_classes=7), "b").attrs["computed"]) == 2
