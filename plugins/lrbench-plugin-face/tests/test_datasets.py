"""Dataset readers on generated files; the .bin unpickler refuses code."""

import os
import pickle

import numpy as np
import pytest
from lrbench_face.datasets import BinVerification, PairsVerification, read_bin, scface, tinyface, write_bin
from lrbench_face.toyfaces import ToyFaceGallery, ToyFacePairs, ToyFaces
from PIL import Image

from lrbench.datasets import DatasetRootError
from lrbench.registry import LrbenchError


def _img(seed, size=16):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_bin_roundtrip(tmp_path):
    images = [_img(i) for i in range(6)]
    write_bin(tmp_path / "t.bin", images, [True, False, True])
    ds = BinVerification(str(tmp_path / "t.bin"))
    assert len(ds) == 6 and ds.pairs.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert ds.issame.tolist() == [True, False, True] and ds.task == "verification"
    assert all(np.array_equal(np.asarray(ds.load(i)), np.asarray(images[i])) for i in range(6))
    assert BinVerification(str(tmp_path / "t.bin"), limit=2).pairs.shape == (2, 2)


def test_bin_py2_style_bytes_and_numpy_issame(tmp_path):
    # protocol-2 pickles of bytes go through _codecs.encode; numpy bools through numpy globals: both allowed
    images = [_img(i) for i in range(2)]
    write_bin(tmp_path / "a.bin", images, [True])
    bins, _ = pickle.load(open(tmp_path / "a.bin", "rb"))
    with open(tmp_path / "b.bin", "wb") as fh:
        pickle.dump((bins, np.array([False])), fh, protocol=2)
    encoded, issame = read_bin(tmp_path / "b.bin")
    assert encoded == bins and issame.tolist() == [False]


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.bin", "wb") as fh:
        pickle.dump(([b"x", Payload(marker)], [True]), fh, protocol=2)
    with pytest.raises(LrbenchError, match="evil.bin: refused for safety: refusing to load (posix|os|nt).system"):
        read_bin(tmp_path / "evil.bin")
    assert not marker.exists()


class _Huge:
    """Pickles as ``bytes(n)``: an allowed constructor asked for a huge object by a few bytes of file."""

    def __init__(self, n):
        self.n = n

    def __reduce__(self):
        return bytes, (self.n,)


class _HugeArray:
    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (10**9,), b"b")


def test_allowed_constructors_cannot_allocate_more_than_the_file_holds(tmp_path):
    # 50 MB each from a file of about a hundred bytes; 10**10 would be just as cheap to write and kill the machine
    with open(tmp_path / "huge.bin", "wb") as fh:
        pickle.dump(([_Huge(50_000_000), _Huge(50_000_000)], [True]), fh, protocol=4)
    size = (tmp_path / "huge.bin").stat().st_size
    with pytest.raises(LrbenchError, match=f"refusing to build bytes of 50000000 bytes from a {size}-byte file"):
        read_bin(tmp_path / "huge.bin")
    with open(tmp_path / "array.bin", "wb") as fh:  # an empty array claiming 10**9 elements
        pickle.dump(([_HugeArray(), _HugeArray()], [True]), fh, protocol=4)
    with pytest.raises(LrbenchError, match="refusing to build an array of 1000000000 bytes"):
        read_bin(tmp_path / "array.bin")


def test_bin_errors(tmp_path):
    with pytest.raises(DatasetRootError, match="not found"):
        BinVerification(str(tmp_path / "nope.bin"))
    with open(tmp_path / "odd.bin", "wb") as fh:
        pickle.dump(([b"a", b"b", b"c"], [True]), fh)
    with pytest.raises(Exception, match="3 images for 1 pairs"):
        read_bin(tmp_path / "odd.bin")


def test_pairs_txt(tmp_path):
    for person, n in (("Ann_A", 2), ("Bob_B", 1)):
        (tmp_path / person).mkdir()
        for k in range(1, n + 1):
            _img(k).save(tmp_path / person / f"{person}_{k:04d}.png")
    (tmp_path / "pairs.txt").write_text("1\t2\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t1\n")
    ds = PairsVerification(str(tmp_path), image_size=32)
    assert len(ds) == 3 and ds.pairs.tolist() == [[0, 1], [0, 2]] and ds.issame.tolist() == [True, False]
    assert ds.load(2).size == (32, 32)
    (tmp_path / "bad.txt").write_text("Ann_A\t1\tCid_C\t1\n")
    with pytest.raises(DatasetRootError, match="Cid_C/Cid_C_0001"):
        PairsVerification(str(tmp_path), pairs="bad.txt")
    with pytest.raises(DatasetRootError, match="pairs file not found"):
        PairsVerification(str(tmp_path), pairs="none.txt")


def test_scface_layout(tmp_path):
    g = tmp_path / "mugshot_frontal_cropped_all"
    g.mkdir()
    for i in (1, 51, 52):
        _img(i).save(g / f"{i:03d}_frontal.png")
    for d in (1, 2, 3):
        cam = tmp_path / f"surveillance_cameras_distance_{d}" / "cam1"
        cam.mkdir(parents=True)
        for i in (1, 51, 52):
            _img(10 * d + i).save(cam / f"{i:03d}_cam1_{d}.png")
    ds = scface(str(tmp_path))
    assert ds.task == "identification" and len(ds) == 2 + 6
    assert sorted(ds.groups[ds.roles == "probe"].tolist()) == ["d1", "d1", "d2", "d2", "d3", "d3"]
    assert set(ds.labels.tolist()) == {51, 52} and ds.load(0).size == (112, 112)
    with pytest.raises(DatasetRootError, match="gallery folder not found"):
        scface(str(tmp_path / "x"))


def test_scface_protocol_tests_on_ids_51_130_and_fine_tunes_on_1_50(tmp_path):
    """The LogExp paper (4.2): 80 of the 130 identities are tested, the other 50 fine-tune the network; rank-1 is
    reported per distance d1 / d2 / d3. Generated root: 130 ids, a mugshot and 5 cameras x 3 distances each."""
    g = tmp_path / "mugshot_frontal_cropped_all"
    g.mkdir()
    for i in range(1, 131):
        (g / f"{i:03d}_frontal.jpg").write_bytes(b"")
        for d in (1, 2, 3):
            for cam in range(1, 6):
                path = tmp_path / f"surveillance_cameras_distance_{d}" / f"cam{cam}" / f"{i:03d}_cam{cam}_{d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
    test = scface(str(tmp_path))
    assert len(test) == 80 + 80 * 15 and set(test.labels.tolist()) == set(range(51, 131))
    assert {g: int((test.groups == g).sum()) for g in ("d1", "d2", "d3")} == {"d1": 400, "d2": 400, "d3": 400}
    assert int((test.roles == "gallery").sum()) == 80
    train = scface(str(tmp_path), split="train")
    assert len(train) == 50 * 16 and sorted(set(train.labels.tolist())) == list(range(50))
    assert not {train.item_id(i) for i in range(len(train))} & {test.item_id(i) for i in range(len(test))}
    assert len(scface(str(tmp_path), split="all")) == 130 * 16
    assert test.identity() != scface(str(tmp_path), split="all").identity()
    with pytest.raises(LrbenchError, match="choices: test, train, all"):
        scface(str(tmp_path), split="val")


def test_tinyface_layout(tmp_path):
    for folder, names in (("Probe", ["1_1", "2_1"]), ("Gallery_Match", ["1_2", "2_2"]), ("Gallery_Distractor", ["d"])):
        (tmp_path / folder).mkdir()
        for k, n in enumerate(names):
            _img(k).save(tmp_path / folder / f"{n}.png")
    ds = tinyface(str(tmp_path), image_size=None)
    assert ds.roles.tolist().count("gallery") == 3 and (ds.labels == -1).sum() == 1
    with pytest.raises(DatasetRootError, match="Probe folder not found"):
        tinyface(str(tmp_path / "none"))


def test_toy_faces_are_deterministic_and_split():
    a, b = ToyFaces("train", 3, 2), ToyFaces("train", 3, 2)
    assert np.array_equal(np.asarray(a.load(4)), np.asarray(b.load(4))) and a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert not np.array_equal(np.asarray(a.load(0)), np.asarray(ToyFaces("test", 3, 2).load(0)))
    pairs = ToyFacePairs(identities=10, pairs=40)
    assert len(pairs.issame) == 40 and pairs.issame.sum() == 20 and pairs.issame[:2].all()  # folds: genuine first
    gal = ToyFaceGallery(identities=3, probes=2, distractors=2)
    assert (gal.roles == "gallery").sum() == 5 and (gal.labels == -1).sum() == 2
