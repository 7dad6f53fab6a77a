import numpy as np
import torch
from lrbench_example.plugin import COLOURS, ColourProbe
from PIL import Image


def test_colour_probe_picks_the_swatch_colour():
    model = ColourProbe()
    names = list(COLOURS)
    text = torch.nn.functional.normalize(model.encode_text([f"a photo of a {c} thing." for c in names]), dim=-1)
    for name, rgb in COLOURS.items():
        img = Image.fromarray(np.full((40, 60, 3), np.array(rgb) * 255, dtype=np.uint8))
        feats = torch.nn.functional.normalize(model.encode_image(model.prepare([img])), dim=-1)
        assert names[int((feats @ text.T).argmax())] == name


def test_the_documented_spec_runs_and_reads_every_swatch(tmp_path):
    """`lrbench run examples/lrbench-plugin-example/spec.yaml` works as the README says (its data is generated): the
    mean colour survives any downscale, so top-1 is 1.0 at every condition (8 classes, chance 0.125)."""
    from pathlib import Path

    import yaml
    from lrbench_example import plugin

    from lrbench.plugins import Plugins
    from lrbench.runner import run_spec

    spec = yaml.safe_load((Path(__file__).parents[1] / "spec.yaml").read_text())
    plugins = Plugins(load_entry_points=False, extra=[(plugin, "example")])
    df = run_spec(spec, tmp_path / "run", plugins=plugins, cache_dir=tmp_path / "cache")
    top1 = df[df.metric == "top1"].set_index("condition")
    assert set(top1.index) == {"hr", "bicubic@8", "bicubic@2"}
    assert (top1["value"] == 1.0).all() and (top1["n"] == 32).all()
