"""Discovery through really installed distributions: build the core's and the example plugin's wheels, install them
into a fresh virtual environment, and check `lrbench plugins --json` and a spec that uses the plugin."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, env=None, isolated=True, **kw):
    # isolated: without PYTHONPATH, as a source tree on it (a development shell) would shadow the wheels under test,
    # and the egg-info a source build leaves there makes pip think lrbench is already installed
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH" or not isolated}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    wheels = tmp / "wheels"
    _run(
        [
            "bash",
            str(ROOT / "scripts" / "build-wheels.sh"),
            str(wheels),
            ".",
            "examples/lrbench-plugin-example",
            "plugins/lrbench-plugin-eva",
        ],
        env=dict(os.environ, PYTHON=sys.executable),
    )
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    # reuse this interpreter's heavy dependencies (torch, pandas, ...) without reinstalling them: a .pth line
    # appends our site-packages after the fresh environment's own, so the wheels installed below win
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            *map(str, sorted(wheels.glob("lrbench-*.whl"))),
            *map(str, sorted(wheels.glob("lrbench_plugin_example*.whl"))),
            *map(str, sorted(wheels.glob("lrbench_plugin_eva*.whl"))),
        ]
    )
    return env_dir, tmp


def test_plugin_resolves_against_built_wheels(fresh_env, tmp_path):
    """`pip install --no-index --find-links dist lrbench-plugin-eva` picks the built wheel (dry run: cheap for CI), and
    the wheel requires lrbench>=0.1, never PyPI's unrelated lrbench 0.0.0.1."""
    env_dir, tmp = fresh_env
    wheels = tmp / "wheels"
    (eva,) = wheels.glob("lrbench_plugin_eva-*.whl")
    import zipfile

    with zipfile.ZipFile(eva) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: lrbench>=0.1" in meta.splitlines() and "Version: 0.1.0" in meta.splitlines()
    report = tmp_path / "report.json"
    # --ignore-installed --no-deps: this environment sees the development installs; the dry run must pick both wheels
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "--dry-run",
            "-q",
            "--ignore-installed",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(wheels),
            "--report",
            str(report),
            "lrbench-plugin-eva",
            "lrbench>=0.1",
        ]
    )
    install = {i["metadata"]["name"]: i for i in json.loads(report.read_text())["install"]}
    assert install["lrbench-plugin-eva"]["download_info"]["url"] == eva.as_uri()
    assert install["lrbench"]["metadata"]["version"] == "0.1.0"


def test_every_distribution_has_one_layout():
    """lrbench-plugin-<name>: package lrbench_<name>, entry point <name> = lrbench_<name>.plugin, pyproject.toml only
    (no pytest table of its own: the root's configuration runs every test), version read from the package, the core
    required as lrbench>=0.1, a test extra."""
    import tomllib

    dists = [*sorted((ROOT / "plugins").glob("lrbench-plugin-*")), ROOT / "examples" / "lrbench-plugin-example"]
    assert len(dists) == 8
    for d in dists:
        assert not (d / "setup.cfg").exists() and not (d / "setup.py").exists(), d
        short = d.name.removeprefix("lrbench-plugin-")
        package = f"lrbench_{short}"
        toml = tomllib.loads((d / "pyproject.toml").read_text())
        project = toml["project"]
        assert project["name"] == d.name
        assert project["entry-points"] == {"lrbench": {short: f"{package}.plugin"}}, d
        assert sorted(p.name for p in d.glob("lrbench_*") if (p / "__init__.py").is_file()) == [package]
        assert (d / package / "plugin.py").is_file()
        assert project["dynamic"] == ["version"] and "version" not in project
        assert toml["tool"]["setuptools"]["dynamic"]["version"] == {"attr": f"{package}.__version__"}
        assert toml["tool"]["setuptools"]["packages"]["find"]["include"] == [f"{package}*"]
        assert "pytest" not in toml["tool"], d
        assert "lrbench>=0.1" in project["dependencies"], d
        assert project["optional-dependencies"]["test"] == ["pytest>=7"], d
        assert '__version__ = "' in (d / package / "__init__.py").read_text()


def test_installed_plugin_is_listed_with_version(fresh_env):
    env_dir, tmp = fresh_env
    env = dict(os.environ, LRBENCH_LOAD_PLUGINS="example")
    out = _run([str(env_dir / "bin" / "lrbench"), "plugins", "--json"], env=env, cwd=tmp).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["example"]["distribution"] == "lrbench-plugin-example"
    assert plugins["example"]["version"] == "0.1.0"
    assert plugins["example"]["registered"] == {"models": ["colour-probe"], "datasets": ["swatches"]}
    assert plugins["example"]["error"] is None
    core = _run([str(env_dir / "bin" / "python"), "-c", "import lrbench; print(lrbench.__file__)"], cwd=tmp).stdout
    assert str(env_dir) in core  # the wheel, not the source tree


def test_installed_eva_wheel_registers_its_models(fresh_env):
    """The README's `pip install --find-links dist lrbench-plugin-eva`, installed for real in the fresh environment:
    the plugin loads from its wheel and registers the `eva` model family."""
    env_dir, tmp = fresh_env
    env = dict(os.environ, LRBENCH_LOAD_PLUGINS="eva")
    out = _run([str(env_dir / "bin" / "lrbench"), "plugins", "--json"], env=env, cwd=tmp).stdout
    eva = {p["name"]: p for p in json.loads(out)}["eva"]
    assert (eva["distribution"], eva["version"], eva["error"]) == ("lrbench-plugin-eva", "0.1.0", None)
    assert eva["registered"]["models"] == ["eva"]
    where = _run([str(env_dir / "bin" / "python"), "-c", "import lrbench_eva; print(lrbench_eva.__file__)"], cwd=tmp)
    assert str(env_dir) in where.stdout


def test_spec_using_installed_plugin_runs(fresh_env):
    env_dir, tmp = fresh_env
    root = tmp / "swatches"
    colours = {"red": (220, 40, 40), "blue": (40, 80, 220), "yellow": (235, 210, 40)}
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            noise = np.random.default_rng(i).integers(-20, 20, (30, 40, 3))
            Image.fromarray(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    spec = tmp / "spec.yaml"
    spec.write_text(
        f"name: swatch\nmodels: [colour-probe]\ndatasets: [{{name: imagefolder, root: {root}}}]\n"
        "conditions: [hr, bicubic@4]\nmetrics: [top1]\n"
    )
    env = dict(os.environ, LRBENCH_LOAD_PLUGINS="example", LRBENCH_CACHE=str(tmp / "cache"))
    _run([str(env_dir / "bin" / "lrbench"), "run", str(spec), "-o", str(tmp / "run"), "-q"], env=env, cwd=tmp)
    import pandas as pd

    results = pd.read_csv(tmp / "run" / "results.csv")
    assert set(results["condition"]) == {"hr", "bicubic@4"}
    assert (results["value"] == 1.0).all()  # mean colour survives any downsampling


def test_broken_plugin_is_reported_and_others_still_load(tmp_path):
    """A plugin whose import raises shows up with its error; the built-ins and other plugins still register."""
    dist = tmp_path / "site" / "lrbench_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lrbench-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lrbench]\nbroken = lrbench_broken_mod\n")
    (tmp_path / "site" / "lrbench_broken_mod.py").write_text("raise ImportError('needs libfoo 9')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), LRBENCH_LOAD_PLUGINS="broken,example")
    out = _run([sys.executable, "-m", "lrbench.cli", "plugins", "--json"], env=env, isolated=False).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert "needs libfoo 9" in plugins["broken"]["error"]
    assert plugins["broken"]["distribution"] == "lrbench-broken"
    assert "bicubic" in plugins["lrbench.degradations"]["registered"]["degradations"]
