"""The ``lrbench`` command line."""
from __future__ import annotations

import json
from pathlib import Path

import click

from . import __version__
from .registry import KINDS, LrbenchError
from .spec import SpecError


class _Group(click.Group):
    """Turns errors a user can act on into a message and an exit status instead of a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(2)
        except LrbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lrbench")
def cli() -> None:
    """lrbench: measure and improve how vision models behave on low-resolution images."""


def _plugins():
    from .plugins import get_plugins

    return get_plugins()


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(as_json: bool) -> None:
    """List plugins: distribution, version, what each registered, and load errors."""
    listing = [p.as_dict() for p in _plugins().listing()]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for p in listing:
        dist = f"{p['distribution'] or '?'} {p['version'] or ''}".strip()
        click.echo(f"{p['name']}  ({dist})")
        if p["error"]:
            click.echo(f"    FAILED TO LOAD: {p['error']}")
        for kind, names in p["registered"].items():
            click.echo(f"    {kind}: {', '.join(names)}")


@cli.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(kind: str, as_json: bool) -> None:
    """List every registered name of KIND with its description and plugin."""
    registry = _plugins().registries[kind]
    rows = [{"name": e.name, "description": e.description, "plugin": e.plugin, **({"info": e.info} if e.info else {})}
            for e in registry]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    width = max((len(r["name"]) for r in rows), default=10)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['description']}  [{r['plugin']}]")
        for k, v in (r.get("info") or {}).items():
            click.echo(f"{'':<{width}}    {k}: {v}")


@cli.command("validate")
@click.argument("spec", type=click.Path(dir_okay=False))
def validate_cmd(spec: str) -> None:
    """Check SPEC without running anything (exit status 2 on problems)."""
    from .spec import load_spec_file, validate

    resolved = validate(load_spec_file(spec), _plugins(), source=spec)
    n = len(resolved.models) * len(resolved.methods) * len(resolved.datasets) * len(resolved.conditions)
    click.echo(f"{spec}: ok ({n} cells)")


@cli.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Run directory (default: spec 'output' or runs/NAME).")
@click.option("--dry-run", is_flag=True, help="Show the plan (cached / to run) and stop.")
@click.option("--device", type=str, default=None, help="cpu, cuda, cuda:N (default: the spec's, else auto).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              help="local: this process; ray: one Ray task per model x method x dataset (see docs/scaling.md).")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: start a local one).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache root (default $LRBENCH_CACHE or ~/.cache/lrbench).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--recompute", is_flag=False, flag_value="*", default=None, metavar="[PATTERN]",
              help="Compute cells again even if cached: all of them, or those whose model|method|dataset|condition "
                   "matches PATTERN (shell-style; '*|bicubic@16', 'tiny|*').")
def run_cmd(spec: str, output: str | None, dry_run: bool, device: str | None, executor: str, address: str | None,
            cache_dir: str | None, quiet: bool, recompute: str | None) -> None:
    """Run SPEC: every model x method x dataset x condition cell, then results, summary and report."""
    from .executors import distributed_env
    from .results import markdown_table, summary_pivot
    from .runner import Runner

    runner = Runner(spec, output, device=device, plugins=_plugins(), progress=not quiet,
                    echo=click.echo, cache_dir=cache_dir, executor=executor, address=address, recompute=recompute)
    results = runner.run(dry_run=dry_run)
    if dry_run or results.empty and distributed_env():
        return
    import pandas as pd

    pivot = results[results["metric"] == "top1"].pivot_table(index=["model", "method", "dataset"], columns="condition",
                                                              values="value", sort=False)
    if not pivot.empty:
        click.echo("\ntop-1:\n" + markdown_table(pivot.reset_index()))
    summary = pd.read_csv(runner.run_dir / "summary.csv")
    if not summary.empty:
        click.echo("summary:\n" + markdown_table(summary_pivot(summary)))
    click.echo(f"report: {runner.run_dir / 'report.html'}")


@cli.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
def report_cmd(run_dir: str) -> None:
    """Rebuild report.md / report.html and plots of RUN_DIR from its stored tables."""
    from .report import write_report

    path = write_report(run_dir)
    click.echo(f"wrote {path} and {Path(run_dir) / 'report.html'}")


@cli.command("aggregate")
@click.argument("table", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for summary.csv and aggregates.csv.")
@click.option("--alpha", type=float, default=200.0, show_default=True, help="Gamma's alpha.")
@click.option("--metric", default="top1", show_default=True, help="Accuracy metric the aggregates read.")
def aggregate_cmd(table: str, out_dir: str, alpha: float, metric: str) -> None:
    """Aggregate metrics (ACC, gamma, Gamma, SAR, WAR) over an accuracy TABLE that did not come from a run.

    TABLE: CSV with columns model, dataset, condition, metric, value (and optionally method, num_classes); condition
    'hr' is the model's own resolution, values are fractions in [0, 1].
    """
    from .builtin.aggregates import Acc, Gamma, ImprovedGamma, Sar, War
    from .results import read_accuracy_table, split_aggregates, write_frame

    df, num_classes = read_accuracy_table(table, metric)
    aggs = [("ACC", Acc(metric)), ("gamma", Gamma(metric)), ("Gamma", ImprovedGamma(metric, alpha=alpha)),
            ("SAR", Sar(metric)), ("WAR", War(metric, alpha=alpha))]
    agg, summary = split_aggregates(df, aggs, num_classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_frame(summary, out / "summary.csv")
    write_frame(agg, out / "aggregates.csv")
    click.echo(f"wrote {out / 'summary.csv'} ({len(summary)} rows) and {out / 'aggregates.csv'} ({len(agg)} rows)")


def main() -> None:
    from .plugins import get_plugins

    get_plugins().register_commands(cli)
    cli()


if __name__ == "__main__":
    main()
