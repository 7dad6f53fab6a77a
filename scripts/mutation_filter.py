"""Trim a cosmic-ray session to the mutants worth running (used by scripts/mutation.sh).

Keeps one natural mutant per operator site (``+`` -> ``-``, ``<`` -> ``<=``, ``==`` -> ``!=``, a number +1, ``not``
dropped, ...) instead of cosmic-ray's every-operator-to-every-other cross product, drops mutants of decorators and
exception types (registration and error paths, not numbers), optionally keeps only named functions, and optionally a
seeded random sample of at most ``--sample`` mutants.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("session")
    ap.add_argument("--functions", default="", help="comma-separated definition names to keep (default: all)")
    ap.add_argument("--sample", type=int, default=0, help="keep at most this many mutants (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    db = sqlite3.connect(args.session)
    rows = db.execute(
        "SELECT job_id, operator_name, occurrence, start_pos_row, start_pos_col, definition_name FROM mutation_specs"
    ).fetchall()
    functions = {f for f in args.functions.split(",") if f}
    keep, seen_numbers = [], set()
    for job, op, occurrence, row, col, definition in rows:
        if not KEEP.match(op):
            continue
        if functions and (definition or "").split(".")[-1] not in functions and (definition or "") not in functions:
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
