"""Executors: Ray (local cluster of 2 CPU workers, a worker killed mid-cell), torchrun sharding (2 gloo ranks), and two
runs sharing one cache at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest

from lrbench.runner import run_spec

SPEC = {
    "name": "s",
    "models": ["tiny"],
    "datasets": [{"name": "toyworld", "n": 20}, {"name": "toyworld", "n": 20, "split": "val", "label": "toy-val"}],
    "conditions": ["hr", "bicubic@16"],
    "batch_size": 8,
}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def test_ray_matches_local_and_survives_a_killed_worker(ray_cluster, tmp_path):
    from ray import cloudpickle

    from lrbench import hookimpl
    from lrbench.models import ModelAdapter
    from lrbench.plugins import Plugins

    marker = tmp_path / "crashed-once"

    class Fragile(ModelAdapter):
        """Mean-colour zero-shot model whose worker process dies the first time it encodes an image."""

        kind = "zero-shot"

        def __init__(self, crash: bool = False):
            import torch

            self.crash, self.words = crash, torch.randn(4096, 3, generator=torch.Generator().manual_seed(0))

        def identity(self):
            return {"family": "fragile"}

        def encode_image(self, x):
            if self.crash and not marker.exists():
                marker.write_text("x")
                os._exit(1)  # the worker process dies mid-cell
            return x.mean(dim=(2, 3))

        def encode_text(self, texts):
            import zlib

            import torch

            return torch.stack([self.words[[zlib.crc32(w.encode()) % 4096 for w in t.split()]].mean(0) for t in texts])

    class P:
        @hookimpl
        def register_models(self, register):
            register("fragile", Fragile, "test model")

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    plugins = Plugins(load_entry_points=False, extra=[(P(), "fragile-plugin")])
    spec = dict(SPEC, models=["fragile", {"name": "fragile", "crash": True, "label": "fragile-crash"}])
    local = run_spec(
        dict(spec, models=["fragile", {"name": "fragile", "label": "fragile-crash"}]),
        tmp_path / "l",
        plugins=plugins,
        cache_dir=tmp_path / "c-local",
    )
    distributed = run_spec(spec, tmp_path / "r", plugins=plugins, cache_dir=tmp_path / "c-ray", executor="ray")
    assert marker.exists(), "one worker must have died"
    assert len(distributed.attrs["computed"]) == 2 * 2 * 2
    pd.testing.assert_frame_equal(local, distributed)


TORCHRUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import TestPlugin
    from lrbench.plugins import Plugins
    from lrbench.runner import run_spec
    plugins = Plugins(load_entry_points=False, extra=[(TestPlugin(), "test-plugin")])
    run_spec({spec!r}, {out!r}, plugins=plugins, cache_dir={cache!r})
""")


def test_torchrun_two_ranks_match_one_process(plugins, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        TORCHRUN.format(
            tests=str(Path(__file__).parent), spec=SPEC, out=str(tmp_path / "dist"), cache=str(tmp_path / "c-dist")
        )
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533", str(script)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    sharded = pd.read_parquet(tmp_path / "dist" / "results.parquet")
    single = run_spec(SPEC, tmp_path / "one", plugins=plugins, cache_dir=tmp_path / "c-one")
    pd.testing.assert_frame_equal(sharded, single, check_dtype=False)


def test_two_concurrent_runs_share_a_cache(plugins, calls, tmp_path):
    cache = tmp_path / "shared"
    out: dict[str, pd.DataFrame] = {}

    def go(name):
        out[name] = run_spec(SPEC, tmp_path / name, plugins=plugins, cache_dir=cache)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pd.testing.assert_frame_equal(out["a"], out["b"])
    assert calls["images"] == 2 * 20 * 2  # every cell computed once: the lock makes the second run wait and reuse
    assert not list(cache.rglob("*.tmp"))
