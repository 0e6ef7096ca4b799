"""The pipeline benchmark: PDF pages/s vs pymupdf4llm and bare get_text, packing time vs gitingest.

`python -m pipeline.bench [--quick]` runs both halves on the same inputs as their own modules
(`pipeline.bench_pdf`, `pipeline.bench_pack`), prints each table, then one JSON line with every field.
"""

import argparse
import json

from pipeline import bench_pack, bench_pdf


def _table(rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) + 2 for c in cols}
    print("".join(c.rjust(width[c]) for c in cols))
    for r in rows:
        print("".join(_fmt(r[c]).rjust(width[c]) for c in cols))


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs (about a minute in all)")
    args = parser.parse_args(argv)
    fields: dict = {}
    for name, module in (("PDF extraction", bench_pdf), ("codebase packing", bench_pack)):
        rows, part = module.run(quick=args.quick)
        print(f"## {name}")
        _table(rows)
        print()
        fields.update(part)
    print(json.dumps(fields))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
