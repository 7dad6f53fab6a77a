"""Loading the plugins stays cheap: no heavy third-party library is imported until a model or method is built.

Every ``lrbench`` command (``plugins``, ``list``, ``validate``) loads all installed plugins, so a plugin module that
imports open_clip, timm, transformers or basicsr at the top costs every command seconds. The check runs in a fresh
interpreter (the test session itself has imported them long ago) and also evaluates every factory signature the way
spec validation does (``inspect.signature(eval_str=True)``), so annotations naming heavy types need no import either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

HEAVY = ("open_clip", "timm", "transformers", "basicsr", "lpips", "spandrel", "facenet_pytorch", "ray", "optuna")
#: the plugins of this repository; each must load without error where it is installed
OURS = {"openclip", "eva", "hf", "sr", "face", "rics", "lrtk0"}

PROBE = f"""
import inspect, json, sys
from lrbench.plugins import Plugins
plugins = Plugins()
signatures = 0
for registry in plugins.registries.values():
    for entry in registry:
        inspect.signature(entry.factory, eval_str=True)
        signatures += 1
heavy = sorted({{m for m in sys.modules if m.split(".")[0] in {HEAVY!r}}})
print(json.dumps({{"loaded": sorted(plugins.info), "errors": {{n: i.error for n, i in plugins.info.items() if i.error}},
                  "signatures": signatures, "heavy": heavy}}))
"""


def test_loading_all_plugins_imports_no_heavy_library():
    env = {k: v for k, v in os.environ.items() if k not in ("LRBENCH_LOAD_PLUGINS", "LRBENCH_DISABLE_PLUGINS")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    installed = {ep.name for ep in metadata.entry_points(group="lrbench")} & OURS
    assert installed <= set(report["loaded"])
    assert not {n: e for n, e in report["errors"].items() if n in installed}
    assert report["signatures"] > 0
    assert report["heavy"] == [], f"loading the plugins imported {report['heavy']}"
