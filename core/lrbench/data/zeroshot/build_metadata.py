"""Regenerate the zero-shot metadata JSON files in this folder (a maintainer's tool, not used at run time).

Sources (all MIT/Apache licensed data: class names, prompt templates, WordNet ids):
- ImageNet class names and the 80 CLIP templates: ``open_clip.zero_shot_metadata`` (OpenAI's CLIP notebook lists);
- ImageNet-1k / -A / -R WordNet ids: ``timm/data/_info/imagenet{,_a,_r}_synsets.txt`` (cross-checked against the
  lists in CLIP_benchmark's ``builder.py``);
- class names (Caltech101, Oxford Pets, Flowers102, EuroSAT) and templates (all other datasets): the
  ``clip-benchmark`` 1.6.2 wheel's ``en_classnames.json`` / ``en_zeroshot_classification_templates.json``, which
  reproduce OpenAI CLIP's ``data/prompts.md``;
- UCF101 class names and its 48 templates: OpenAI CLIP ``data/prompts.md`` (not in clip-benchmark).

Usage: ``python build_metadata.py PATH/TO/clip_benchmark/datasets`` (an unpacked clip-benchmark wheel).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import open_clip.zero_shot_metadata as ocm
import timm

HERE = Path(__file__).parent
CLIP_PROMPTS = "OpenAI CLIP data/prompts.md"
UCF101_CLASSNAMES = [
    "Apply Eye Makeup",
    "Apply Lipstick",
    "Archery",
    "Baby Crawling",
    "Balance Beam",
    "Band Marching",
    "Baseball Pitch",
    "Basketball",
    "Basketball Dunk",
    "Bench Press",
    "Biking",
    "Billiards",
    "Blow Dry Hair",
    "Blowing Candles",
    "Body Weight Squats",
    "Bowling",
    "Boxing Punching Bag",
    "Boxing Speed Bag",
    "Breast Stroke",
    "Brushing Teeth",
    "Clean And Jerk",
    "Cliff Diving",
    "Cricket Bowling",
    "Cricket Shot",
    "Cutting In Kitchen",
    "Diving",
    "Drumming",
    "Fencing",
    "Field Hockey Penalty",
    "Floor Gymnastics",
    "Frisbee Catch",
    "Front Crawl",
    "Golf Swing",
    "Haircut",
    "Hammer Throw",
    "Hammering",
    "Hand Stand Pushups",
    "Handstand Walking",
    "Head Massage",
    "High Jump",
    "Horse Race",
    "Horse Riding",
    "Hula Hoop",
    "Ice Dancing",
    "Javelin Throw",
    "Juggling Balls",
    "Jump Rope",
    "Jumping Jack",
    "Kayaking",
    "Knitting",
    "Long Jump",
    "Lunges",
    "Military Parade",
    "Mixing",
    "Mopping Floor",
    "Nunchucks",
    "Parallel Bars",
    "Pizza Tossing",
    "Playing Cello",
    "Playing Daf",
    "Playing Dhol",
    "Playing Flute",
    "Playing Guitar",
    "Playing Piano",
    "Playing Sitar",
    "Playing Tabla",
    "Playing Violin",
    "Pole Vault",
    "Pommel Horse",
    "Pull Ups",
    "Punch",
    "Push Ups",
    "Rafting",
    "Rock Climbing Indoor",
    "Rope Climbing",
    "Rowing",
    "Salsa Spin",
    "Shaving Beard",
    "Shotput",
    "Skate Boarding",
    "Skiing",
    "Skijet",
    "Sky Diving",
    "Soccer Juggling",
    "Soccer Penalty",
    "Still Rings",
    "Sumo Wrestling",
    "Surfing",
    "Swing",
    "Table Tennis Shot",
    "Tai Chi",
    "Tennis Swing",
    "Throw Discus",
    "Trampoline Jumping",
    "Typing",
    "Uneven Bars",
    "Volleyball Spiking",
    "Walking With Dog",
    "Wall Pushups",
    "Writing On Board",
    "Yo Yo",
]
# prompts.md lists the 48 UCF101 templates as every (noun, article, verb) combination in this order
UCF101_TEMPLATES = [
    f"a {noun} of {art} person {verb}{{c}}."
    for verb in ("", "using ", "doing ", "during ", "performing ", "practicing ")
    for art in ("a", "the")
    for noun in ("photo", "video", "example", "demonstration")
]


def _synsets(name: str) -> list[str]:
    path = Path(timm.__file__).parent / "data" / "_info" / name
    return path.read_text().split()


def _write(name: str, **payload) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")


def main(cb_dir: str) -> None:
    cb = Path(cb_dir)
    names = json.loads((cb / "en_classnames.json").read_text())
    templates = json.loads((cb / "en_zeroshot_classification_templates.json").read_text())
    wnids = _synsets("imagenet_synsets.txt")
    assert wnids == sorted(wnids) and len(wnids) == 1000, "ImageNet class index = position in the sorted wnids"
    inet_templates = [t("{c}") for t in ocm.OPENAI_IMAGENET_TEMPLATES]
    assert inet_templates == templates["imagenet1k"]
    _write(
        "imagenet",
        _source="class names and 80 templates: open_clip.zero_shot_metadata (OpenAI CLIP notebook "
        "Prompt_Engineering_for_ImageNet); wnids: timm imagenet_synsets.txt (sorted = class index)",
        wnids=wnids,
        classnames=list(ocm.IMAGENET_CLASSNAMES),
        templates=inet_templates,
    )
    for sub in ("a", "r"):
        sub_wnids = _synsets(f"imagenet_{sub}_synsets.txt")
        assert len(sub_wnids) == 200 and set(sub_wnids) <= set(wnids)
        _write(
            f"imagenet-{sub}",
            _source=f"the 200 ImageNet-{sub.upper()} wnids: timm imagenet_{sub}_synsets.txt "
            "(same set as CLIP_benchmark builder.py); class names and templates: imagenet.json's entries for them",
            wnids=sorted(sub_wnids),
        )
    cb_src = (
        "clip-benchmark 1.6.2 en_classnames.json / en_zeroshot_classification_templates.json (= " + CLIP_PROMPTS + ")"
    )
    caltech = names["caltech101"]
    assert caltech[0] == "background"
    _write(
        "caltech101",
        _source=cb_src + "; 'background' dropped: torchvision's Caltech101 drops BACKGROUND_Google",
        classnames=caltech[1:],
        templates=templates["caltech101"],
    )
    _write("oxford-pets", _source=cb_src, classnames=names["pets"], templates=templates["pets"])
    _write("flowers102", _source=cb_src, classnames=names["flowers"], templates=templates["flowers"])
    _write(
        "eurosat",
        _source=cb_src + "; order = sorted EuroSAT folder names",
        classnames=names["eurosat"],
        templates=templates["eurosat"],
    )
    for ours, theirs in (
        ("dtd", "dtd"),
        ("food101", "food101"),
        ("sun397", "sun397"),
        ("stanford-cars", "cars"),
        ("fgvc-aircraft", "fgvc_aircraft"),
    ):
        _write(ours, _source=cb_src + "; class names come from the dataset's own files", templates=templates[theirs])
    assert len(UCF101_CLASSNAMES) == 101 and len(UCF101_TEMPLATES) == 48
    _write(
        "ucf101",
        _source=CLIP_PROMPTS + " (class names in classInd.txt order, 48 templates)",
        classnames=UCF101_CLASSNAMES,
        templates=UCF101_TEMPLATES,
    )


if __name__ == "__main__":
    main(sys.argv[1])
