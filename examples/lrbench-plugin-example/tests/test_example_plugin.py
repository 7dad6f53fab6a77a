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
