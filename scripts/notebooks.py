#!/usr/bin/env python3
"""Writes the walkthrough notebooks from their sources: notebooks/src/NN-name.py -> notebooks/NN-name.ipynb.

The sources are the only place to edit a notebook (each notebook says so in its first cell).

    python3 scripts/notebooks.py           # (re)write every notebook   (make notebooks)
    python3 scripts/notebooks.py --check   # fail if a notebook differs from its source (make test)

Adding a notebook: write notebooks/src/NN-name.py defining `cells` (see nbtools.py), run
`make notebooks`, commit both files. A notebook without a source is an error in --check.
"""
import argparse
import difflib
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "notebooks" / "src"


def build(source: Path) -> str:
    sys.path.insert(0, str(SRC))
    try:
        from nbtools import notebook_json
        cells = runpy.run_path(str(source))["cells"]
    finally:
        sys.path.pop(0)
    return notebook_json(cells, source.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = ap.parse_args()
    sources = sorted(SRC.glob("[0-9][0-9]-*.py"))
    if not sources:
        print(f"no notebook source in {SRC}", file=sys.stderr)
        return 2
    bad = 0
    for source in sources:
        target = ROOT / "notebooks" / (source.stem + ".ipynb")
        text = build(source)
        old = target.read_text(encoding="utf-8") if target.is_file() else ""
        if args.check:
            if text != old:
                bad += 1
                diff = difflib.unified_diff(old.splitlines(), text.splitlines(), str(target), str(source), lineterm="", n=1)
                print(f"DIFFERS {target.relative_to(ROOT)} from {source.relative_to(ROOT)}:")
                print("\n".join(list(diff)[:40]))
        elif text != old:
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
            print(f"wrote {target.relative_to(ROOT)}")
    orphans = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
               if not (SRC / (p.stem + ".py")).is_file()]
    for p in orphans:
        print(f"NO SOURCE for {p.relative_to(ROOT)}: write notebooks/src/{p.stem}.py")
    if args.check:
        if bad or orphans:
            print(f"notebooks: {bad} differ from their sources, {len(orphans)} without one; run `make notebooks`")
            return 1
        print(f"notebooks: all {len(sources)} match their sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
