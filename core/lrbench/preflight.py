"""What a run would meet, found before it starts: ``lrbench validate`` and ``lrbench run --dry-run`` report it.

Beyond the spec's names and parameters (spec.py), each model, method and dataset entry is asked what loading it would
need, without loading or downloading: files its parameters name, the registry entry's own ``check`` (weights found
locally, to be downloaded, or missing on an offline machine; a catalogue preset without a loader or whose plugin is not
installed), and datasets whose ``download: true`` would fetch them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .datasets import DatasetRootError
from .registry import Finding, LrbenchError
from .spec import Item, ResolvedSpec
from .weights import check_files


@dataclass(frozen=True)
class Problem:
    """A finding about one spec entry: its key path, label, and what was found."""

    path: str
    label: str
    finding: Finding

    def __str__(self) -> str:
        return f"{self.path} ({self.label}): {self.finding.message}"


def _entry_findings(plugins: Any, item: Item) -> list[Finding]:
    entry, implied = plugins.registries[item.kind].resolve(item.name)
    params = {**implied, **item.params}
    findings = check_files(params)
    if entry.check is not None and not findings:
        try:
            findings += list(entry.check(**params))
        except LrbenchError as exc:
            findings.append(Finding("error", str(exc)))
        except Exception as exc:  # a plugin's check must not hide the others' findings
            findings.append(Finding("error", f"its check failed: {type(exc).__name__}: {exc}"))
    return findings


def _dataset_findings(plugins: Any, item: Item) -> list[Finding]:
    """A ``download: true`` dataset that is not there yet will be fetched; one that is there is fine."""
    if not item.params.get("download"):
        return []
    try:
        plugins.registries["datasets"].create(item.name, **{**item.params, "download": False})
    except DatasetRootError as exc:
        return [Finding("download", f"will download {item.name}: {str(exc).splitlines()[0]}")]
    except (LrbenchError, ValueError, TypeError, OSError) as exc:
        return [Finding("error", str(exc))]
    return []


def preflight(resolved: ResolvedSpec, plugins: Any) -> list[Problem]:
    """Every finding other than ``ok``, in spec order."""
    out: list[Problem] = []
    for item in [*resolved.models, *resolved.methods]:
        out += [Problem(item.path, item.label, f) for f in _entry_findings(plugins, item) if f.level != "ok"]
    for item in resolved.datasets:
        out += [Problem(item.path, item.label, f) for f in _dataset_findings(plugins, item)]
    return out


def datasets_to_download(resolved: ResolvedSpec, plugins: Any) -> set[str]:
    """Labels of ``download: true`` datasets not present yet: a dry run plans without them instead of fetching."""
    return {
        item.label for item in resolved.datasets if any(f.level == "download" for f in _dataset_findings(plugins, item))
    }
