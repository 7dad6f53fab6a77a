"""The ``lrbench`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import __version__
from .registry import KINDS, LrbenchError

#: the core's own commands are defined below; the rest come from plugins, loaded only when one of them is called
_PLUGINS_LOADED = False
#: name -> short help of the commands the plugins added (saved in the registry index)
_PLUGIN_COMMANDS: dict[str, str] = {}


class _Group(click.Group):
    """Turns errors a user can act on into a message and an exit status, and loads plugins only when needed.

    ``lrbench --help`` lists plugin commands from the saved registry index (lrbench.listing) without importing any
    plugin; calling a command the core does not define loads the plugins and their commands.
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LrbenchError as exc:
            if hasattr(exc, "problems"):  # a SpecError: its message is the list of problems
                click.echo(str(exc), err=True)
                ctx.exit(2)
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and not _PLUGINS_LOADED:
            _plugins()
        return self.commands.get(name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(_indexed_commands()))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        indexed = _indexed_commands()
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            rows.append((name, cmd.get_short_help_str(60) if cmd is not None else indexed.get(name, "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
        if not indexed and not _PLUGINS_LOADED:
            formatter.write_paragraph()
            formatter.write_text("Plugins may add commands: `lrbench plugins` lists them.")


def _indexed_commands() -> dict[str, str]:
    from .listing import load_index

    index = load_index()
    return dict(index.get("commands", {})) if index else {}


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lrbench")
def cli() -> None:
    """lrbench: measure and improve how vision models behave on low-resolution images."""


def _plugins():
    """The process-wide plugins, with their commands added to the CLI and the registry index refreshed."""
    global _PLUGINS_LOADED
    from .plugins import get_plugins

    plugins = get_plugins()
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        before = set(cli.commands)
        plugins.register_commands(cli)
        _PLUGIN_COMMANDS.update({n: cli.commands[n].get_short_help_str(60) for n in sorted(set(cli.commands) - before)})
        _index(plugins)
    return plugins


def _index(plugins) -> dict:
    """The registry index of ``plugins``; saved only for the full default plugin set (not a test's or a subset)."""
    from .listing import build_index

    return build_index(plugins, _PLUGIN_COMMANDS, save=plugins.load_entry_points and not plugins.extra)


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
@click.option("--family", default=None, help="Only names whose family or name prefix contains this (case-insensitive).")
@click.option("--available", is_flag=True, help="Only what an installed plugin can load (catalogue presets).")
@click.option("--refresh", is_flag=True, help="Rebuild the saved registry index (normally automatic).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output with every fact.")
def list_cmd(kind: str, family: str | None, available: bool, refresh: bool, as_json: bool) -> None:
    """List the registered names of KIND: one line each (name, family, input size, available, plugin)."""
    from .listing import load_index

    index = None if refresh else load_index()
    if index is None:
        index = _index(_plugins())
    rows = _filter_rows(index["registries"][kind], family, available)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    click.echo(_compact_table(kind, rows))
    click.echo(
        f"({len(rows)} {kind}; --json for every fact"
        + (", --family / --available to filter)" if kind == "models" else ")")
    )


def _family(row: dict) -> str:
    return str((row.get("info") or {}).get("family") or row["name"].split(":", 1)[0])


def _filter_rows(rows: list[dict], family: str | None, available: bool) -> list[dict]:
    if family:
        f = family.lower()
        rows = [r for r in rows if f in _family(r).lower() or r["name"].lower().startswith(f)]
    if available:
        rows = [r for r in rows if (r.get("info") or {}).get("available", True) is not False]
    return rows


def _compact_table(kind: str, rows: list[dict]) -> str:
    """One line per name, cut to the terminal's width."""
    import shutil

    width = shutil.get_terminal_size((120, 24)).columns
    if kind == "models":
        cols = [
            (
                r["name"],
                _family(r),
                str((r.get("info") or {}).get("input_size") or ""),
                {True: "yes", False: "no"}.get((r.get("info") or {}).get("available", True), "?"),
                r["plugin"],
                r["description"],
            )
            for r in rows
        ]
        head = ("name", "family", "px", "available", "plugin", "description")
    else:
        cols = [(r["name"], r["plugin"], r["description"]) for r in rows]
        head = ("name", "plugin", "description")
    widths = [max([len(head[i])] + [len(c[i]) for c in cols]) for i in range(len(head) - 1)]
    lines = []
    for c in [head, *cols]:
        line = "  ".join(f"{v:<{w}}" for v, w in zip(c[:-1], widths)) + "  " + c[-1]
        lines.append(line if len(line) <= width else line[: width - 3] + "...")
    return "\n".join(lines)


@cli.command("validate")
@click.argument("spec", type=click.Path(dir_okay=False))
def validate_cmd(spec: str) -> None:
    """Check SPEC without running or downloading anything: names, parameters, dataset roots, plugin load errors,
    catalogue presets, checkpoint files, weights present / to download / missing offline (exit status 2 on problems)."""
    from .preflight import preflight
    from .spec import load_spec_file, validate

    plugins = _plugins()
    resolved = validate(load_spec_file(spec), plugins, source=spec)
    problems = preflight(resolved, plugins)
    for p in problems:
        click.echo(f"{'error' if p.finding.level == 'error' else p.finding.level}: {p}", err=p.finding.level == "error")
    n = len(resolved.models) * len(resolved.methods) * len(resolved.datasets) * len(resolved.conditions)
    errors = sum(p.finding.level == "error" for p in problems)
    if errors:
        click.echo(f"{spec}: {errors} problem{'s' * (errors != 1)} a run would fail on", err=True)
        raise SystemExit(2)
    downloads = sum(p.finding.level == "download" for p in problems)
    click.echo(
        f"{spec}: ok ({n} cells" + (f"; {downloads} download{'s' * (downloads != 1)} first)" if downloads else ")")
    )


def one_line_spec(
    models: tuple[str, ...],
    datasets: tuple[str, ...],
    conditions: str | None,
    methods: tuple[str, ...],
    name: str | None,
) -> dict:
    """The spec of ``lrbench run --model M --dataset D[:root] --conditions hr,bicubic@16``: DATASET:ROOT sets root."""
    if not models or not datasets:
        raise click.UsageError(
            "give a SPEC file, or --model and --dataset (e.g. lrbench run --model toy-clip "
            "--dataset toyworld --conditions hr,bicubic@16)"
        )
    entries = []
    for d in datasets:
        ds, _, root = d.partition(":")
        entries.append({"name": ds, "root": root} if root else ds)
    spec: dict = {
        "name": name
        or "-".join(m.replace(":", "-").replace("/", "-") for m in models)[:60]
        + "-"
        + "-".join(d.partition(":")[0] for d in datasets)[:40],
        "models": list(models),
        "datasets": entries,
    }
    if methods:
        spec["methods"] = list(methods)
    if conditions:
        spec["conditions"] = [c.strip() for c in conditions.split(",") if c.strip()]
    return spec


@cli.command("run")
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--model", "-m", "models", multiple=True, help="Without SPEC: a model to run (repeatable).")
@click.option("--dataset", "-d", "datasets", multiple=True, help="Without SPEC: DATASET or DATASET:ROOT (repeatable).")
@click.option("--conditions", "-c", default=None, help="Without SPEC: comma-separated, e.g. hr,bicubic@32,bicubic@16.")
@click.option("--method", "methods", multiple=True, help="Without SPEC: a method (repeatable; default none).")
@click.option("--name", default=None, help="Without SPEC: the run's name (default from models and datasets).")
@click.option(
    "--output", "-o", type=click.Path(file_okay=False), help="Run directory (default: spec 'output' or runs/NAME)."
)
@click.option("--dry-run", is_flag=True, help="Show the plan (cached / to run) and stop.")
@click.option("--device", type=str, default=None, help="cpu, cuda, cuda:N (default: the spec's, else auto).")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    help="local: this process; ray: one Ray task per model x method x dataset (see docs/scaling.md).",
)
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: start a local one).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Cache root (default $LRBENCH_CACHE or ~/.cache/lrbench).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--recompute",
    is_flag=False,
    flag_value="*",
    default=None,
    metavar="[PATTERN]",
    help="Compute cells again even if cached: all of them, or those whose model|method|dataset|condition "
    "matches PATTERN (shell-style; '*|bicubic@16', 'tiny|*').",
)
@click.option(
    "--fail-fast",
    is_flag=True,
    help="Stop at the first unit that fails (default: record it in run.json, run the others, exit 1 at the end).",
)
def run_cmd(
    spec: str | None,
    models: tuple[str, ...],
    datasets: tuple[str, ...],
    conditions: str | None,
    methods: tuple[str, ...],
    name: str | None,
    output: str | None,
    dry_run: bool,
    device: str | None,
    executor: str,
    address: str | None,
    cache_dir: str | None,
    quiet: bool,
    recompute: str | None,
    fail_fast: bool,
) -> None:
    """Run SPEC (or one --model on one --dataset): every model x method x dataset x condition cell, then results,
    summary and report. A one-line run writes the spec it ran as spec.yaml in the run directory."""
    from .executors import distributed_env
    from .results import headline_pivot, markdown_table, summary_pivot
    from .runner import Runner

    if spec is not None and (models or datasets or conditions or methods or name):
        raise click.UsageError("give either a SPEC file or --model/--dataset/--conditions, not both")
    spec_in = spec if spec is not None else one_line_spec(models, datasets, conditions, methods, name)
    runner = Runner(
        spec_in,
        output,
        device=device,
        plugins=_plugins(),
        progress=not quiet,
        echo=click.echo,
        cache_dir=cache_dir,
        executor=executor,
        address=address,
        recompute=recompute,
        fail_fast=fail_fast,
    )
    if spec is None and not dry_run:
        import yaml

        from .cache import atomic_write_text

        atomic_write_text(runner.run_dir / "spec.yaml", yaml.safe_dump(spec_in, sort_keys=False))
        click.echo(f"spec: {runner.run_dir / 'spec.yaml'} (lrbench run {runner.run_dir / 'spec.yaml'} repeats it)")
    results = runner.run(dry_run=dry_run)
    if dry_run or results.empty and distributed_env():
        return
    import pandas as pd

    pivot = headline_pivot(results, runner.headline)
    if not pivot.empty:
        click.echo("\n" + markdown_table(pivot))
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


@cli.command("merge")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="The merged run directory.")
def merge_cmd(run_dirs: tuple[str, ...], out_dir: str) -> None:
    """Merge RUN_DIRS into one leaderboard (results, aggregates, summary, report); refuses conflicting cells."""
    from .merge import merge_runs

    results = merge_runs(list(run_dirs), out_dir)
    click.echo(
        f"merged {len(run_dirs)} runs ({len(results)} rows) into {out_dir}; report: {Path(out_dir) / 'report.html'}"
    )


@cli.command("aggregate")
@click.argument("table", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for summary.csv and aggregates.csv.",
)
@click.option("--alpha", type=float, default=200.0, show_default=True, help="Gamma's alpha.")
@click.option(
    "--metric",
    default=None,
    help="Accuracy metric the aggregates read. Default: the headline metric the tasks of the table's 'task' "
    "column declare; top1 for a table without one.",
)
def aggregate_cmd(table: str, out_dir: str, alpha: float, metric: str | None) -> None:
    """Aggregate metrics (ACC, gamma, Gamma, SAR, WAR) over an accuracy TABLE that did not come from a run.

    TABLE: CSV with columns model, dataset, condition, metric, value (and optionally method, task, num_classes);
    condition 'hr' is the model's own resolution, values are fractions in [0, 1].
    """
    from .builtin.aggregates import Acc, Gamma, ImprovedGamma, Sar, War
    from .results import read_accuracy_table, split_aggregates, write_frame

    metric = metric or _headline_of_table(table)
    df, num_classes = read_accuracy_table(table, metric)
    aggs = [
        ("ACC", Acc(metric)),
        ("gamma", Gamma(metric)),
        ("Gamma", ImprovedGamma(metric, alpha=alpha)),
        ("SAR", Sar(metric)),
        ("WAR", War(metric, alpha=alpha)),
    ]
    agg, summary = split_aggregates(df, aggs, num_classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_frame(summary, out / "summary.csv")
    write_frame(agg, out / "aggregates.csv")
    click.echo(f"wrote {out / 'summary.csv'} ({len(summary)} rows) and {out / 'aggregates.csv'} ({len(agg)} rows)")


def _headline_of_table(table: str) -> str:
    """The headline metric of the tasks a table names in its ``task`` column (each task declares one); ``top1`` for a
    table without the column (LR0.FM's accuracy tables). Tasks that disagree, or a task no installed plugin registers,
    are an error asking for ``--metric``."""
    import pandas as pd

    try:
        header = pd.read_csv(table, nrows=0, encoding="utf-8-sig").columns
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return "top1"  # read_accuracy_table reports what is wrong with the file
    if "task" not in [c.strip() for c in header]:
        return "top1"
    tasks = pd.read_csv(table, usecols=lambda c: c.strip() == "task", dtype=str, encoding="utf-8-sig").iloc[:, 0]
    from .plugins import get_plugins

    registry = get_plugins().registries["tasks"]
    headline: dict[str, str] = {}
    for name in sorted({t.strip() for t in tasks.dropna() if t.strip()}):
        try:
            headline[name] = registry.create(name).headline_metric
        except LrbenchError as exc:
            raise LrbenchError(f"{table}: task {name!r} names no headline metric here ({exc}); pass --metric") from None
    metrics = set(headline.values())
    if len(metrics) > 1:
        named = ", ".join(f"{t}: {m}" for t, m in headline.items())
        raise LrbenchError(f"{table}: its tasks lead with different metrics ({named}); choose one with --metric")
    return metrics.pop() if metrics and "" not in metrics else "top1"


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
