"""The image pipeline (lrbench.tasks): the reference path in loader workers, per-condition errors, worker count."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lrbench.builtin.degradations import HR, GaussianBlur, Jpeg, Resize
from lrbench.builtin.toyworld import ToyWorld
from lrbench.datasets import Dataset
from lrbench.degradations import Degradation
from lrbench.models import ModelAdapter, ModelWrapper, Preprocess
from lrbench.runner import run_spec
from lrbench.tasks import MAX_AUTO_WORKERS, RunContext, iter_condition_batches, resolve_workers


class Plain(ModelAdapter):
    preprocess = Preprocess(48, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


class Doubling(ModelWrapper):
    """Changes ``prepare``: the pipeline must call it in the main process, not the plain preprocessing."""

    def prepare(self, images):
        return 2 * self.inner.prepare(images)


class Wide(ToyWorld):
    """Toy-world images pasted on a 90 x 60 canvas: non-square, so crops and aspect ratios matter."""

    def load(self, index: int) -> Image.Image:
        canvas = Image.new("RGB", (90, 60), (40, 80, 120))
        canvas.paste(super().load(index).resize((60, 60)), (17, 0))
        return canvas


CONDITIONS = [HR(), Resize(16), Resize(100), GaussianBlur(1.5), Jpeg(30)]


def _old_pipeline(model: ModelAdapter, ds: Dataset, index: np.ndarray, deg: Degradation) -> torch.Tensor:
    """What lrbench did before the model's preprocessing moved into the workers: prepare() on the degraded PIL list."""
    return model.prepare([deg.pil(ds.load(int(i))) for i in index])


@pytest.mark.parametrize("model", [Plain(), Doubling(Plain(), {"m": 1})], ids=["plain", "own-prepare"])
def test_reference_path_in_workers_is_bit_identical_to_main_process_prepare(model):
    ds = Wide("test", n=10)
    ctx = RunContext(batch_size=4, num_workers=2)
    seen = []
    for idx, inputs in iter_condition_batches(model, ds, CONDITIONS, ctx):
        seen.extend(idx.tolist())
        for deg in CONDITIONS:
            assert torch.equal(inputs[deg.condition], _old_pipeline(model, ds, idx, deg)), deg.condition
    assert seen == list(range(10)) and not ctx.skipped


def test_plain_preprocess_only_when_prepare_is_the_models_own():
    assert Plain().plain_preprocess() == Plain.preprocess
    assert ModelWrapper(Plain(), {}).plain_preprocess() == Plain.preprocess  # a wrapper that changes nothing
    assert Doubling(Plain(), {}).plain_preprocess() is None


class FailsOn(Degradation):
    """Raises on the given items (recognised by their top-left pixel), passes every other image through."""

    name = "fails_on"

    def __init__(self, pixels: tuple):
        self.pixels = pixels

    def pil(self, image: Image.Image) -> Image.Image:
        if image.getpixel((0, 0)) in self.pixels:
            raise ValueError("no such luck")
        return image


def test_each_condition_keeps_its_own_errors_and_the_item_is_skipped_once():
    ds = ToyWorld("test", n=6)
    bad = ds.load(2).getpixel((0, 0))
    assert all(ds.load(i).getpixel((0, 0)) != bad for i in (0, 1, 3, 4, 5))
    conditions = [HR(), FailsOn((bad,)), Resize(16)]
    ctx = RunContext(batch_size=6, num_workers=0)
    from lrbench.tasks import _ReferenceLoader

    loader = _ReferenceLoader(ds, conditions, Plain.preprocess.pil)
    batch = loader.collate([loader[i] for i in range(6)])
    assert batch.errors["hr"] == {} and batch.errors["bicubic@16"] == {}
    failing = conditions[1].condition
    assert batch.errors[failing] == {2: "ValueError: no such luck"}
    assert batch.inputs["hr"].shape == (6, 3, 48, 48) and batch.inputs[failing].shape == (5, 3, 48, 48)
    assert batch.succeeded(failing).tolist() == [0, 1, 3, 4, 5]
    from lrbench.tasks import ConditionFailed

    with pytest.raises(ConditionFailed, match="no such luck") as failed:  # its cell fails, not the item's others
        list(iter_condition_batches(Plain(), ds, conditions, ctx))
    assert failed.value.condition == failing and not ctx.skipped


def test_auto_workers_is_cores_minus_one_capped(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(2)))
    assert resolve_workers("auto") == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    assert resolve_workers("auto") == MAX_AUTO_WORKERS == 16
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert resolve_workers("auto") == 0
    assert resolve_workers(3) == 3


def test_run_json_records_the_chosen_worker_count(plugins, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(3)))
    spec = {
        "name": "w",
        "models": ["tiny"],
        "datasets": [{"name": "toyworld", "n": 8}],
        "conditions": ["hr", "bicubic@16"],
        "metrics": ["top1"],
        "batch_size": 4,
    }
    run_spec(spec, tmp_path / "auto", plugins=plugins, cache_dir=cache_dir)
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["num_workers"] == 2
    run_spec(dict(spec, num_workers=0), tmp_path / "zero", plugins=plugins, cache_dir=cache_dir)
    assert json.loads((tmp_path / "zero" / "run.json").read_text())["num_workers"] == 0


# ---- the fast path ---------------------------------------------------------------------------------------------------


def _jpeg_folder(root, sizes, n_per_size=2):
    """Toy renders on canvases of the given (width, height), content off-centre, as quality-90 JPEGs."""
    from lrbench.builtin.toyworld import render

    k = 0
    for w, h in sizes:
        for _ in range(n_per_size):
            image = render(1000 + k)[0]
            side = min(w, h)
            canvas = Image.new("RGB", (w, h), image.getpixel((0, 0)))
            offset = (k * 29) % (max(w, h) - side + 1)
            canvas.paste(image.resize((side, side)), (offset, 0) if w > h else (0, offset))
            (root / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
            canvas.save(root / f"c{k % 2}" / f"{k}.jpg", quality=90)
            k += 1
    from lrbench.datasets import imagefolder

    return imagefolder(str(root))


@pytest.mark.parametrize(
    "w,h,size",
    [(500, 375, 128), (375, 500, 64), (517, 389, 16), (640, 360, 224), (99, 100, 7), (100, 100, 33), (30, 20, 64)],
)
def test_sizes_computed_without_resizing_are_the_ones_pil_gives(w, h, size):
    image = Image.new("RGB", (w, h))
    assert Resize(size).resample(h, w)[:2] == Resize(size).pil(image).size[::-1]
    assert Resize(size, square=True).resample(h, w)[:2] == (size, size)
    pre = Preprocess(size)
    from torchvision.transforms import functional as TF

    assert pre.resized_size(h, w) == TF.resize(image, size).size[::-1]
    assert HR().resample(h, w) == (h, w, None)


FIDELITY_CONDITIONS = [HR(), Resize(128), Resize(64), Resize(32), Resize(16), Resize(8)]


def _levels(model, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) * torch.tensor(model.preprocess.std).view(1, 3, 1, 1) * 255).abs()


def test_fast_path_sees_the_reference_geometry_on_non_square_jpegs(tmp_path):
    """Same steps, sizes and crop box as the reference; on the CPU the resizes are uint8 with Pillow's arithmetic.
    Measured on these 12 images: 0.002-0.009 8-bit levels mean per condition (the fast path that shrank and cropped
    before degrading: 1.27-1.91). Bound 0.025 = 2.7x the largest."""
    ds = _jpeg_folder(tmp_path / "jpegs", [(120, 90), (90, 120), (160, 90), (103, 77), (96, 96), (110, 70)])
    model = Plain()
    ref = next(iter_condition_batches(model, ds, FIDELITY_CONDITIONS, RunContext(batch_size=12)))[1]
    fast = next(iter_condition_batches(model, ds, FIDELITY_CONDITIONS, RunContext(batch_size=12, fast_path=True)))[1]
    for deg in FIDELITY_CONDITIONS:
        levels = _levels(model, ref[deg.condition], fast[deg.condition])
        assert levels.shape == (12, 3, 48, 48)
        assert levels.mean() < 0.025, (deg.condition, levels.mean().item())


def test_fast_path_float_arithmetic_of_cuda_runs_stays_within_a_quarter_level(tmp_path):
    """A CUDA run resizes in float (no uint8 antialiased kernels there), rounding to 8 bits between steps. The same
    code on float images on the CPU, measured on these 12 images: 0.13-0.23 levels mean per condition; bound 0.6 =
    2.6x the largest. (nvJPEG's IDCT adds its own difference on a GPU: not measured here.)"""
    from lrbench.tasks import _FastLoader, derive_batch

    ds = _jpeg_folder(tmp_path / "jpegs", [(120, 90), (90, 120), (160, 90), (103, 77), (96, 96), (110, 70)])
    model = Plain()
    ref = next(iter_condition_batches(model, ds, FIDELITY_CONDITIONS, RunContext(batch_size=12)))[1]
    loader = _FastLoader(ds, FIDELITY_CONDITIONS, decode=True, derive=None)
    sources = loader.collate([loader[i] for i in range(12)])
    as_float = [image.float().div(255) for image in sources.data]
    batch = derive_batch(sources.index, as_float, FIDELITY_CONDITIONS, model.prepare_tensor, model.plain_preprocess())
    for deg in FIDELITY_CONDITIONS:
        assert _levels(model, ref[deg.condition], batch.inputs[deg.condition]).mean() < 0.6, deg.condition


def test_fast_path_decodes_in_workers_or_on_the_device_alike(tmp_path):
    """A CPU run decodes and derives in the loader workers; a CUDA run reads bytes there and decodes and derives in
    the main process (decode_jpegs, derive_batch). Here both run on the CPU: the same inputs, to float rounding."""
    from lrbench.tasks import _FastLoader, derive_batch

    ds = _jpeg_folder(tmp_path / "jpegs", [(120, 90), (90, 120), (96, 96)])
    model = Plain()
    in_workers = list(
        iter_condition_batches(model, ds, FIDELITY_CONDITIONS, RunContext(batch_size=3, num_workers=2, fast_path=True))
    )
    loader = _FastLoader(ds, FIDELITY_CONDITIONS, decode=False, derive=None)
    for idx, inputs in in_workers:
        sources = loader.collate([loader[int(i)] for i in idx])
        assert sources.kinds == ["jpeg"] * len(idx)
        batch = derive_batch(
            sources.index,
            sources.decode(torch.device("cpu")),
            FIDELITY_CONDITIONS,
            model.prepare_tensor,
            model.plain_preprocess(),
        )
        for cond, x in inputs.items():
            torch.testing.assert_close(batch.inputs[cond], x, atol=1e-5, rtol=0)


def test_fast_path_decodes_every_kind_of_file_and_skips_only_the_broken_one(tmp_path):
    """Greyscale and CMYK JPEGs, a PNG and a file that is not an image in one batch: each decoded as PIL decodes it
    (CMYK and PNG by PIL itself in the worker), the broken one skipped with its error, no error for the batch."""
    from lrbench.builtin.toyworld import render
    from lrbench.datasets import imagefolder
    from lrbench.tasks import _FastLoader, decode_jpegs

    root = tmp_path / "mixed" / "c"
    root.mkdir(parents=True)
    image = render(7)[0].resize((90, 60))
    image.save(root / "a_rgb.jpg", quality=90)
    image.convert("L").save(root / "b_grey.jpg", quality=90)
    image.convert("CMYK").save(root / "c_cmyk.jpg", quality=90)
    image.save(root / "d.png")
    (root / "e_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = imagefolder(str(tmp_path / "mixed"))
    loader = _FastLoader(ds, [HR()], decode=False, derive=None)
    kinds = [loader[i][1] for i in range(5)]
    assert kinds == ["jpeg", "jpeg", "pixels", "pixels", "error"]
    decoded = loader.collate([loader[i] for i in range(5)]).decode(torch.device("cpu"))
    for i in range(4):
        assert torch.equal(decoded[i], torch.from_numpy(np.asarray(ds.load(i))).permute(2, 0, 1)), ds.files[i]
    assert isinstance(decoded[4], str)
    # the batch decoder rejecting one file: the others still decode, that one becomes its error
    good = torch.frombuffer(bytearray((root / "a_rgb.jpg").read_bytes()), dtype=torch.uint8)
    junk = torch.frombuffer(bytearray(b"\xff\xd8\xff\xe0 truncated"), dtype=torch.uint8)
    out = decode_jpegs([good, junk, good], torch.device("cpu"))
    assert torch.equal(out[0], decoded[0]) and torch.equal(out[2], decoded[0]) and isinstance(out[1], str)
    ctx = RunContext(batch_size=5, fast_path=True)
    ((idx, inputs),) = iter_condition_batches(Plain(), ds, [HR()], ctx)
    assert idx.tolist() == [0, 1, 2, 3] and [s["item"] for s in ctx.skipped] == ["c/e_broken.jpg"]
