"""Trim a cosmic-ray session to the mutants worth running (used by scripts/mutation.sh).

Keeps one natural mutant per operator site (``+`` -> ``-``, ``<`` -> ``<=``, ``==`` -> ``!=``, a number +1, ``not``
dropped, ...) instead of cosmic-ray's every-operator-to-every-other cross product, drops mutants of decorators and
exception types (registration and error paths, not numbers) and mutants inside type annotations (never evaluated: every
module has ``from __future__ import annotations``), optionally keeps only named functions (or all but ``!name`` ones),
and optionally a seeded random sample of at most ``--sample`` mutants.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import sqlite3

KEEP = re.compile(
    r"core/(ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Mod_FloorDiv|Pow_Mul|BitAnd_BitOr"
    r"|BitOr_BitAnd|BitXor_BitOr|LShift_RShift|RShift_LShift)"
    r"|ReplaceComparisonOperator_(Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)"
    r"|ReplaceUnaryOperator_(Delete_Not|Delete_USub|Delete_Invert)"
    r"|NumberReplacer|AddNot|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ZeroIterationForLoop|ReplaceAndWithOr"
    r"|ReplaceOrWithAnd|ReplaceBreakWithContinue|ReplaceContinueWithBreak)$"
)


def annotation_spans(path: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) (row, col) of every annotation in the module: parameters, returns and annotated assignments."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            nodes.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            nodes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            nodes.append(node.annotation)
    return [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in nodes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("session")
    ap.add_argument(
        "--functions", default="", help="comma-separated definition names to keep, or !name to drop (default: all)"
    )
    ap.add_argument("--sample", type=int, default=0, help="keep at most this many mutants (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    db = sqlite3.connect(args.session)
    rows = db.execute(
        "SELECT job_id, operator_name, occurrence, start_pos_row, start_pos_col, definition_name, module_path"
        " FROM mutation_specs"
    ).fetchall()
    names = [f for f in args.functions.split(",") if f]
    functions = {f for f in names if not f.startswith("!")}
    skipped = {f[1:] for f in names if f.startswith("!")}
    spans = {path: annotation_spans(path) for path in {r[-1] for r in rows}}
    keep, seen_numbers = [], set()
    for job, op, occurrence, row, col, definition, path in rows:
        if not KEEP.match(op):
            continue
        if any(start <= (row, col) < end for start, end in spans[path]):
            continue
        names_of = {(definition or "").split(".")[-1], definition or ""}
        if (functions and not names_of & functions) or names_of & skipped:
            continue
        if op == "core/NumberReplacer":  # two mutants (+1, -1) per number: the first is enough
            if (row, col) in seen_numbers:
                continue
            seen_numbers.add((row, col))
        keep.append(job)
    if args.sample and len(keep) > args.sample:
        keep = sorted(random.Random(args.seed).sample(keep, args.sample))
    drop = [(j,) for j, *_ in rows if j not in set(keep)]
    db.executemany("DELETE FROM mutation_specs WHERE job_id = ?", drop)
    db.executemany("DELETE FROM work_items WHERE job_id = ?", drop)
    db.commit()
    print(f"{args.session}: kept {len(keep)} of {len(rows)} mutants")


if __name__ == "__main__":
    main()
