"""The 15 LR0.FM dataset loaders on generated fake roots, one per published layout (tiny images, real file formats)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from lrbench.builtin.lr0fm_datasets import CLASS_COUNTS, LOADERS, zeroshot_metadata
from lrbench.datasets import DatasetRootError
from lrbench.plugins import Plugins

TEMPLATE_COUNTS = {
    "imagenet": 80,
    "imagenet-a": 80,
    "imagenet-v2": 80,
    "imagenet-r": 80,
    "imagenet-sketch": 80,
    "caltech101": 34,
    "dtd": 8,
    "food101": 1,
    "sun397": 2,
    "stanford-cars": 8,
    "fgvc-aircraft": 2,
    "oxford-pets": 1,
    "flowers102": 1,
    "eurosat": 3,
    "ucf101": 48,
}
#: the ten class folders of the EuroSAT RGB download (2750/<folder>), in label order
EUROSAT_FOLDERS = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)


@pytest.fixture(scope="module")
def registry():
    """The built-in datasets only: these tests do not depend on which other plugins are installed."""
    return Plugins(load_entry_points=False).datasets


def _img(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (value, 255 - value, 7)).save(path)


def _imagenet_like(root: Path, wnids: list[str], sub: str = "") -> None:
    for k, w in enumerate(wnids):
        for j in range(2):
            _img(root / sub / w / f"{w}_{j}.JPEG", k)


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("lr0fm")
    r = {n: base / n for n in LOADERS}
    inet = zeroshot_metadata("imagenet")["wnids"]
    _imagenet_like(r["imagenet"], [inet[0], inet[1], inet[999]], "val")
    _imagenet_like(r["imagenet-a"], zeroshot_metadata("imagenet-a")["wnids"][:3], "imagenet-a")
    _imagenet_like(r["imagenet-r"], zeroshot_metadata("imagenet-r")["wnids"][-2:])  # ROOT is the folder itself
    _imagenet_like(r["imagenet-sketch"], [inet[5], inet[7]], "sketch")
    for cls in (0, 1, 999):
        for j in range(2):
            _img(r["imagenet-v2"] / "imagenetv2-matched-frequency-format-val" / str(cls) / f"h{j}.jpeg")
    # Caltech101: the first real category folders, fillers to 101, plus the background folder torchvision drops
    cal = r["caltech101"] / "caltech101" / "101_ObjectCategories"
    folders = ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion"]
    folders += [f"zz{i:03d}" for i in range(102 - len(folders))]
    for f in folders:
        for j in range(1 + (f == "accordion")):
            _img(cal / f / f"image_{j + 1:04d}.jpg")
    # DTD split 1: 47 textures, one test image each, one train image that must not appear
    dtd = r["dtd"] / "dtd" / "dtd"
    textures = [f"texture_{i:02d}" for i in range(47)]
    for t in textures:
        _img(dtd / "images" / t / f"{t}_0001.jpg")
    (dtd / "labels").mkdir(parents=True)
    (dtd / "labels" / "test1.txt").write_text("".join(f"{t}/{t}_0001.jpg\n" for t in textures))
    (dtd / "labels" / "train1.txt").write_text(f"{textures[0]}/{textures[0]}_0009.jpg\n")
    # Food-101: meta/test.json lists 101 dishes
    food = r["food101"] / "food-101"
    dishes = [f"dish_{i:03d}" for i in range(101)]
    (food / "meta").mkdir(parents=True)
    (food / "meta" / "test.json").write_text(json.dumps({d: [f"{d}/{i}" for i in range(2)] for d in dishes}))
    for d in dishes:
        for i in range(2):
            _img(food / "images" / d / f"{i}.jpg")
    # SUN397: 397 classes, images of two classes, partition 1 lists three of the four images
    sun = r["sun397"] / "SUN397"
    sun.mkdir(parents=True)
    cats = [f"/s/scene_{i:03d}" for i in range(396)] + ["/a/apartment_building/outdoor"]
    (sun / "ClassName.txt").write_text("\n".join(cats) + "\n")
    for rel in (
        "s/scene_000/sun_a.jpg",
        "s/scene_000/sun_b.jpg",
        "a/apartment_building/outdoor/sun_c.jpg",
        "a/apartment_building/outdoor/sun_d.jpg",
    ):
        _img(sun / rel)
    (sun / "Partitions").mkdir()
    (sun / "Partitions" / "Testing_01.txt").write_text(
        "/s/scene_000/sun_a.jpg\n/a/apartment_building/outdoor/sun_c.jpg\n/a/apartment_building/outdoor/sun_d.jpg\n"
    )
    # Stanford Cars: .mat files in the devkit's structure (1-based classes)
    cars = r["stanford-cars"] / "stanford_cars"
    (cars / "devkit").mkdir(parents=True)
    scipy.io.savemat(
        cars / "devkit" / "cars_meta.mat",
        {"class_names": np.array([f"Make Model {i} 2012" for i in range(196)], dtype=object)},
    )
    annos = np.array(
        [("00001.jpg", 1), ("00002.jpg", 196), ("00003.jpg", 196)], dtype=[("fname", object), ("class", object)]
    )
    scipy.io.savemat(cars / "cars_test_annos_withlabels.mat", {"annotations": annos})
    for f in ("00001.jpg", "00002.jpg", "00003.jpg"):
        _img(cars / "cars_test" / f)
    # FGVC-Aircraft: 100 variants, some with spaces and slashes as in the real list
    air = r["fgvc-aircraft"] / "fgvc-aircraft-2013b" / "data"
    air.mkdir(parents=True)
    variants = ["707-320", "A300B4", "F/A-18"] + [f"Variant {i}" for i in range(97)]
    (air / "variants.txt").write_text("\n".join(variants) + "\n")
    (air / "images_variant_test.txt").write_text("0001 707-320\n0002 F/A-18\n0003 Variant 96\n")
    for i in ("0001", "0002", "0003"):
        _img(air / "images" / f"{i}.jpg")
    # Oxford Pets: annotations/test.txt "image class-id species breed-id"
    pets = r["oxford-pets"] / "oxford-iiit-pet"
    (pets / "annotations").mkdir(parents=True)
    (pets / "annotations" / "test.txt").write_text(
        "Abyssinian_1 1 1 1\nAbyssinian_2 1 1 1\nyorkshire_terrier_5 37 2 25\n"
    )
    for i in ("Abyssinian_1", "Abyssinian_2", "yorkshire_terrier_5"):
        _img(pets / "images" / f"{i}.jpg")
    # Flowers102: setid.mat / imagelabels.mat (1-based image ids and labels)
    fl = r["flowers102"] / "flowers-102"
    fl.mkdir(parents=True)
    scipy.io.savemat(fl / "imagelabels.mat", {"labels": np.array([[1, 102, 5, 1]])})
    scipy.io.savemat(
        fl / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[4]]), "tstid": np.array([[2, 3]])}
    )
    for i in range(1, 5):
        _img(fl / "jpg" / f"image_{i:05d}.jpg")
    # EuroSAT: the ten real class folders
    for c in EUROSAT_FOLDERS:
        _img(r["eurosat"] / "eurosat" / "2750" / c / f"{c}_1.jpg")
    # UCF101 middle frames: CoOp's underscore folders and a CamelCase one, plus CoOp's split file
    ucf = r["ucf101"] / "UCF-101-midframes"
    for rel in (
        "Apply_Eye_Makeup/v_ApplyEyeMakeup_g01_c01.jpg",
        "Apply_Eye_Makeup/v_ApplyEyeMakeup_g08_c01.jpg",
        "YoYo/v_YoYo_g01_c01.jpg",
        "Handstand_Pushups/v_HandStandPushups_g01_c01.jpg",
    ):
        _img(ucf / rel)
    split = {
        "train": [["Apply_Eye_Makeup/v_ApplyEyeMakeup_g08_c01.jpg", 0, "Apply_Eye_Makeup"]],
        "val": [],
        "test": [
            ["Apply_Eye_Makeup/v_ApplyEyeMakeup_g01_c01.jpg", 0, "Apply_Eye_Makeup"],
            ["YoYo/v_YoYo_g01_c01.jpg", 100, "YoYo"],
            ["Handstand_Pushups/v_HandStandPushups_g01_c01.jpg", 36, "Handstand_Pushups"],
        ],
    }
    (r["ucf101"] / "split_zhou_UCF101.json").write_text(json.dumps(split))
    return r


# name -> (expected item count, {item path fragment: expected class name})
EXPECTED = {
    "imagenet": (6, {"n01440764_0": "tench", "n15075141_1": "toilet paper"}),
    "imagenet-a": (6, {}),
    "imagenet-v2": (6, {"/0/h0": "tench", "/999/h1": "toilet paper"}),
    "imagenet-r": (4, {}),
    "imagenet-sketch": (4, {}),
    "caltech101": (
        102,
        {"Faces/": "off-center face", "Faces_easy/": "centered face", "accordion/image_0002": "accordion"},
    ),
    "dtd": (47, {"texture_00/": "texture 00", "texture_46/": "texture 46"}),
    "food101": (202, {"dish_000/1": "dish 000", "dish_100/0": "dish 100"}),
    "sun397": (3, {"scene_000/sun_a": "scene 000", "outdoor/sun_d": "apartment building outdoor"}),
    "stanford-cars": (3, {"00001": "Make Model 0 2012", "00003": "Make Model 195 2012"}),
    "fgvc-aircraft": (3, {"0001": "707-320", "0002": "F/A-18", "0003": "Variant 96"}),
    "oxford-pets": (3, {"Abyssinian_2": "Abyssinian", "yorkshire_terrier_5": "Yorkshire Terrier"}),
    "flowers102": (2, {"image_00002": "blackberry lily", "image_00003": "english marigold"}),
    "eurosat": (10, {"AnnualCrop_1": "annual crop land", "SeaLake_1": "lake or sea"}),
    "ucf101": (
        3,
        {"g01_c01": None, "YoYo": "Yo Yo", "Handstand": "Hand Stand Pushups", "ApplyEyeMakeup_g01": "Apply Eye Makeup"},
    ),
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_loader_counts_labels_and_metadata(registry, roots, name):
    every = {"split": "all"} if name in ("caltech101", "eurosat") else {}  # the fixture has too few images to split
    ds = registry.create(name, root=str(roots[name]), **every)
    n, checks = EXPECTED[name]
    assert len(ds) == n and len(ds.labels) == n
    assert ds.num_classes == CLASS_COUNTS[name] == len(ds.classnames)
    assert len(ds.templates) == TEMPLATE_COUNTS[name] and all("{c}" in t for t in ds.templates)
    for fragment, classname in checks.items():
        hits = [i for i in range(n) if fragment in "/" + ds.item_id(i)]
        assert hits, f"{fragment} not among {[ds.item_id(i) for i in range(n)]}"
        if classname is not None:
            assert {ds.classnames[ds.labels[i]] for i in hits} == {classname}
    img = ds.load(0)
    assert img.mode == "RGB" and img.size == (6, 5)
    assert ds.identity()["n"] == n


def test_imagenet_variants_use_the_imagenet_names_of_their_wnids(registry, roots):
    inet = zeroshot_metadata("imagenet")
    a = registry.create("imagenet-a", root=str(roots["imagenet-a"]))
    wnids_a = zeroshot_metadata("imagenet-a")["wnids"]
    assert a.classnames == [inet["classnames"][inet["wnids"].index(w)] for w in wnids_a]
    assert sorted(set(a.labels.tolist())) == [0, 1, 2]
    assert a.templates == inet["templates"]
    r = registry.create("imagenet-r", root=str(roots["imagenet-r"]))
    assert sorted(set(r.labels.tolist())) == [198, 199]
    assert r.classnames[199] == inet["classnames"][inet["wnids"].index(zeroshot_metadata("imagenet-r")["wnids"][-1])]


def test_partitions_and_splits_select_the_listed_items(registry, roots):
    sun_all = registry.create("sun397", root=str(roots["sun397"]), partition=None)
    assert len(sun_all) == 4
    with pytest.raises(DatasetRootError, match="Testing_02.txt not found.*partition: null"):
        registry.create("sun397", root=str(roots["sun397"]), partition=2)
    ucf_all = registry.create("ucf101", root=str(roots["ucf101"]), split="all")
    ucf_train = registry.create("ucf101", root=str(roots["ucf101"]), split="train")
    assert len(ucf_all) == 4 and len(ucf_train) == 1
    fl_train = registry.create("flowers102", root=str(roots["flowers102"]), split="train")
    assert fl_train.item_id(0).endswith("image_00001.jpg") and fl_train.labels.tolist() == [0]


def test_limit_is_a_stratified_subset_and_num_classes_overrides(registry, roots):
    food = registry.create("food101", root=str(roots["food101"]), limit=101, num_classes=102)
    assert len(food) == 101 and sorted(food.labels.tolist()) == list(range(101))
    assert food.num_classes == 102 and len(food.classnames) == 101
    assert food.params()["num_classes"] == 102 and food.params()["limit"] == 101


def test_corrupt_image_fails_alone(registry, roots, tmp_path):
    import shutil

    root = tmp_path / "eurosat"
    shutil.copytree(roots["eurosat"], root)
    (root / "eurosat" / "2750" / "Forest" / "Forest_1.jpg").write_bytes(b"not a jpeg")
    ds = registry.create("eurosat", root=str(root), split="all")
    bad = [i for i in range(len(ds)) if "Forest_1" in ds.item_id(i)][0]
    with pytest.raises(OSError):
        ds.load(bad)
    assert all(ds.load(i).size == (6, 5) for i in range(len(ds)) if i != bad)


@pytest.mark.parametrize("name", list(LOADERS))
def test_missing_root_names_path_and_layout(registry, tmp_path, name):
    missing = tmp_path / "nowhere" / name
    with pytest.raises(DatasetRootError) as err:
        registry.create(name, root=str(missing))
    msg = str(err.value)
    assert str(missing) in msg and "Expected layout" in msg and "ROOT/" in msg
    assert not missing.exists(), "a failed load must not create folders"


@pytest.mark.parametrize("name", ["food101", "dtd", "caltech101", "stanford-cars", "imagenet", "ucf101", "sun397"])
def test_malformed_root_says_what_is_missing(registry, tmp_path, name):
    (tmp_path / "stray").mkdir()
    _img(tmp_path / "stray" / "x.jpg")
    with pytest.raises(DatasetRootError) as err:
        registry.create(name, root=str(tmp_path))
    assert str(tmp_path) in str(err.value) and "Expected layout" in str(err.value)


def test_default_root_comes_from_lrbench_data(registry, monkeypatch, roots):
    monkeypatch.setenv("LRBENCH_DATA", str(roots["dtd"].parent))
    assert len(registry.create("dtd")) == 47


def test_unknown_parameter_values_are_named(registry):
    with pytest.raises(ValueError, match="matched-frequency"):
        registry.create("imagenet-v2", root="/x", variant="nope")
    with pytest.raises(ValueError, match="tstid|test"):
        registry.create("flowers102", root="/x", split="nope")


def test_end_to_end_run_on_a_lr0fm_root(plugins, tmp_path):
    """run_spec with the conftest's tiny zero-shot model on a fake EuroSAT root: accuracies and aggregates."""
    from lrbench.runner import run_spec

    rng = np.random.default_rng(0)
    root = tmp_path / "eurosat"
    for c in EUROSAT_FOLDERS:
        for j in range(2):
            path = root / "eurosat" / "2750" / c / f"{c}_{j}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    spec = {
        "name": "e2e",
        "models": ["tiny"],
        "datasets": [{"name": "eurosat", "root": str(root), "split": "all", "limit": 15}],
        "conditions": ["hr", "bicubic@16"],
        "metrics": ["top1", "gamma", "SAR", "WAR"],
        "batch_size": 8,
    }
    df = run_spec(spec, tmp_path / "run", plugins=plugins, cache_dir=tmp_path / "cache")
    top1 = df[(df["metric"] == "top1")].set_index("condition")
    assert set(top1.index) == {"hr", "bicubic@16"} and (top1["n"] == 15).all()
    assert top1["value"].between(0, 1).all()
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert {"SAR", "WAR"} <= set(summary["metric"])
    at16 = summary[summary["condition"] == "bicubic@16"].set_index("metric")["value"]
    a_hr, a16 = top1.loc["hr", "value"], top1.loc["bicubic@16", "value"]
    assert a_hr > 0  # the seeded images give the tiny model 2 of 15 at HR
    assert at16["SAR"] == pytest.approx(a16 / a_hr)
    assert at16["WAR"] == pytest.approx(a16 / a_hr * (1 - np.exp(-200 * (a_hr - 1 / 10) ** 2)))  # EuroSAT: C = 10


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_caltech101_is_the_authors_split_30_train_per_class_seed_1234(registry, tmp_path):
    """CLIP/dataloaders/caltech101.py of LR0.FM: 30 training images per class (np seed 1234), the rest is the test set.
    On a root with the real download's 8,677 images in 101 categories: 5,647 test, 3,030 train."""
    cal = tmp_path / "caltech101" / "101_ObjectCategories"
    folders = ["Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion"] + [f"zz{i:03d}" for i in range(96)]
    counts = [86] * 92 + [85] * 9  # 8,677 images
    for f, n in zip(folders, counts):
        for j in range(n):
            _touch(cal / f / f"image_{j + 1:04d}.jpg")
    for j in range(40):
        _touch(cal / "BACKGROUND_Google" / f"image_{j + 1:04d}.jpg")
    test = registry.create("caltech101", root=str(tmp_path))
    train = registry.create("caltech101", root=str(tmp_path), split="train")
    every = registry.create("caltech101", root=str(tmp_path), split="all")
    assert (len(test), len(train), len(every)) == (5647, 3030, 8677)
    assert np.bincount(train.labels, minlength=101).tolist() == [30] * 101
    ids = {d: {d.item_id(i) for i in range(len(d))} for d in (test, train, every)}
    assert not ids[test] & ids[train] and ids[test] | ids[train] == ids[every]
    assert ids[test] == {test.item_id(i) for i in range(len(test))}  # deterministic: the same draw every time
    assert [registry.create("caltech101", root=str(tmp_path)).item_id(i) for i in range(5)] == [
        test.item_id(i) for i in range(5)
    ]
    assert test.params()["split"] == "test" and test.identity() != every.identity()
    with pytest.raises(ValueError, match="choose one of"):
        registry.create("caltech101", root=str(tmp_path), split="val")


def test_eurosat_tests_on_the_authors_list_of_the_coop_split(registry, tmp_path):
    """CLIP/dataloaders/eurosat.py of LR0.FM evaluates on the 'val' list of CoOp's split_zhou_EuroSAT.json (asserted
    there: train 13,500, val 5,400, test 8,100), not on all 27,000 tiles."""
    folder = tmp_path / "eurosat" / "2750"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for k in range(27000):
        c = EUROSAT_FOLDERS[k % 10]
        rel = f"{c}/{c}_{k // 10 + 1}.jpg"
        _touch(folder / rel)
        part = "train" if k < 13500 else "val" if k < 18900 else "test"
        split[part].append([rel, k % 10, c])
    (tmp_path / "split_zhou_EuroSAT.json").write_text(json.dumps(split))
    sizes = {s: len(registry.create("eurosat", root=str(tmp_path), split=s)) for s in ("test", "coop-test", "train")}
    assert sizes == {"test": 5400, "coop-test": 8100, "train": 13500}
    test = registry.create("eurosat", root=str(tmp_path))
    assert len(test) == 5400 and test.item_id(0) == "eurosat/2750/" + split["val"][0][0]
    assert [test.classnames[y] for y in test.labels[:2]] == ["annual crop land", "forest"]
    (tmp_path / "split_zhou_EuroSAT.json").unlink()
    with pytest.raises(DatasetRootError, match="split_zhou_EuroSAT.json not found"):
        registry.create("eurosat", root=str(tmp_path))


def test_the_authors_dataset_names_are_aliases_with_a_warning(registry, roots, caplog):
    from lrbench.builtin.lr0fm_datasets import ALIASES, canonical_dataset

    assert canonical_dataset("stanford_cars") == "stanford-cars" and canonical_dataset("mine") == "mine"
    assert canonical_dataset("cars") == "stanford-cars" and canonical_dataset("my_data") == "my_data"
    assert set(ALIASES) == {"imagenet1k", "pets", "cars", "flowers"}  # true aliases only: no second spelling
    with caplog.at_level("WARNING", logger="lrbench"):
        pets = registry.create("pets", root=str(roots["oxford-pets"]))
    assert len(pets) == 3 and pets.name == "oxford-pets"
    assert "'pets'" in caplog.text and "'oxford-pets'" in caplog.text
    # the underscore spellings are read by the registries' naming rule: the same entry, not a registered duplicate
    assert "oxford_pets" not in registry.names() and registry.canonical("oxford_pets") == "oxford-pets"
    assert registry["fgvc_aircraft"] is registry["fgvc-aircraft"]
    assert len(registry.create("oxford_pets", root=str(roots["oxford-pets"]))) == 3


def test_the_authors_names_aggregate_with_the_papers_weights_and_unweighted_datasets_are_noted():
    """An authors' table (stanford_cars, fgvc_aircraft) finds the class counts and WAR-16 weights; a dataset without
    a WAR weight is named in aggregates.csv's note with the weight it got."""
    from lrbench.builtin.aggregates import WAR16_WEIGHTS, ImprovedGamma, War

    rows = []
    for dataset, hr, low in (("stanford_cars", 0.6, 0.3), ("fgvc_aircraft", 0.3, 0.1), ("mine", 0.8, 0.4)):
        rows += [
            {"model": "m", "method": "none", "dataset": dataset, "condition": c, "metric": "top1", "value": v}
            for c, v in (("hr", hr), ("bicubic@16", low))
        ]
    table = pd.DataFrame(rows)
    g = ImprovedGamma().aggregate(table, {"mine": 10}).set_index(["dataset", "condition"])
    expected = 0.5 * (1 - np.exp(-200 * (0.6 - 1 / 196) ** 2))  # Stanford Cars: 196 classes
    assert g.loc[("stanford_cars", "bicubic@16"), "value"] == pytest.approx(expected)
    mean_w = np.mean(list(WAR16_WEIGHTS.values()))
    assert (
        g.loc[("mine", "bicubic@16"), "note"]
        == f"no WAR-16 weight: WAR (default weights) gives it the mean weight {mean_w:.4f}"
    )
    assert g.loc[("stanford_cars", "bicubic@16"), "note"] == ""
    war = War()
    assert war.weight("stanford_cars") == WAR16_WEIGHTS["stanford-cars"] and war.weight("mine") == pytest.approx(mean_w)
    gam = {d: g.loc[(d, "bicubic@16"), "value"] for d in ("stanford_cars", "fgvc_aircraft", "mine")}
    w = {
        "stanford_cars": WAR16_WEIGHTS["stanford-cars"],
        "fgvc_aircraft": WAR16_WEIGHTS["fgvc-aircraft"],
        "mine": mean_w,
    }
    at16 = war.aggregate(table, {"mine": 10}).set_index("condition").loc["bicubic@16", "value"]
    assert at16 == pytest.approx(sum(w[d] * gam[d] for d in w) / sum(w.values()))
