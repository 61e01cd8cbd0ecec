#!/usr/bin/env python3
"""Writes the walkthrough notebooks from their sources: notebooks/src/NN-name.md -> notebooks/NN-name.ipynb.

The sources are jupytext Markdown (```rust fences are code cells, their tags fence attributes; see
notebooks/src/README.md) and the only place to edit a notebook (each notebook says so in its first cell).
Runs in the project venv, which has jupytext (requirements.txt):

    python scripts/notebooks.py           # (re)write every notebook   (make notebooks)
    python scripts/notebooks.py --check   # fail if a notebook differs from its source (make test)

What this adds to what jupytext reads: cell ids c00, c01, ..., no outputs, the kit's kernelspec and
language_info, a note in the first cell that names the source, and none of jupytext's own metadata.
Every source must declare the kit's kernelspec in its YAML header, begin with a markdown cell, and have
the same first code cell (the dependency cell) as every other source.

Adding a notebook: write notebooks/src/NN-name.md (copy the header and the first code cell of another
source), run `make notebooks`, commit both files. A notebook without a source is an error in --check.
"""
import argparse
import collections
import difflib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SRC = NOTEBOOKS / "src"
SUFFIX = ".md"

KERNELSPEC = {"display_name": "Rust (fmnist-kit)", "language": "rust", "name": "fmnist-kit"}
LANGUAGE_INFO = {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust",
                 "name": "Rust", "pygment_lexer": "rust", "version": ""}
# Cell metadata jupytext uses for its own round trips (e.g. lines_to_next_cell): never written to the .ipynb.
JUPYTEXT_CELL_KEYS = ("skipline", "noskipline", "cell_marker", "lines_to_next_cell", "lines_to_end_of_cell_marker")


class SourceError(Exception):
    pass


def read_source(source: Path):
    """The notebook jupytext reads from `source`, checked and completed; returns it and its first code cell."""
    import jupytext  # the project venv's (requirements.txt)

    nb = jupytext.read(source, fmt="md")
    rel = source.relative_to(ROOT)
    if nb.metadata.get("kernelspec") != KERNELSPEC:
        raise SourceError(f"{rel}: its YAML header must declare the kernelspec {KERNELSPEC}, "
                          f"not {nb.metadata.get('kernelspec')}")
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise SourceError(f"{rel}: the first cell must be the notebook's markdown introduction")
    for i, cell in enumerate(nb.cells):
        if not cell.source.strip():
            raise SourceError(f"{rel}: cell {i} ({cell.cell_type}) is empty (a run of blank lines in the source?)")
        if cell.cell_type not in ("markdown", "code"):
            raise SourceError(f"{rel}: cell {i} is a {cell.cell_type} cell; the sources hold markdown and code only")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        raise SourceError(f"{rel}: no code cell; every notebook starts with the shared dependency cell")

    note = (f"\n\n*Generated from [`notebooks/src/{source.name}`](src/{source.name}) by `make notebooks`: "
            "edit that file, not this notebook.*")
    nb.cells[0].source += note
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:02d}"
        for key in JUPYTEXT_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    extra = {k: v for k, v in nb.metadata.items() if k not in ("jupytext", "kernelspec", "language_info", "fmnist_kit")}
    nb.metadata = {
        **extra,
        "fmnist_kit": {"generated_from": f"notebooks/src/{source.name}"},
        "kernelspec": dict(KERNELSPEC),
        "language_info": dict(LANGUAGE_INFO),
    }
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb, code[0].source


def ipynb_text(nb) -> str:
    import jupytext

    text = jupytext.writes(nb, fmt="ipynb")
    return text if text.endswith("\n") else text + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = ap.parse_args()
    sources = sorted(SRC.glob(f"[0-9][0-9]-*{SUFFIX}"))
    if not sources:
        print(f"no notebook source in {SRC}", file=sys.stderr)
        return 2
    errors, built = [], {}
    for source in sources:
        try:
            built[source] = read_source(source)
        except SourceError as e:
            errors.append(str(e))

    # The shared dependency cell: the one most sources begin with; a source that drifts is an error.
    first_cells = collections.Counter(first for _, first in built.values())
    if len(first_cells) > 1:
        (canonical, _), = first_cells.most_common(1)
        for source, (_, first) in list(built.items()):
            if first != canonical:
                diff = difflib.unified_diff(canonical.splitlines(), first.splitlines(), "shared first cell",
                                            f"first code cell of {source.name}", lineterm="", n=1)
                errors.append(f"{source.relative_to(ROOT)}: its first code cell differs from the one the other "
                              "sources share (every notebook begins with the same dependency cell):\n"
                              + "\n".join(diff))
                del built[source]

    bad = 0
    for source, (nb, _) in built.items():
        target = NOTEBOOKS / (source.stem + ".ipynb")
        text = ipynb_text(nb)
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
    for e in errors:
        print(f"ERROR {e}")
    orphans = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")) if not (SRC / (p.stem + SUFFIX)).is_file()]
    for p in orphans:
        print(f"NO SOURCE for {p.relative_to(ROOT)}: write notebooks/src/{p.stem}{SUFFIX}")
    if args.check:
        if bad or errors or orphans:
            print(f"notebooks: {bad} differ from their sources, {len(errors)} sources in error, "
                  f"{len(orphans)} without one; fix the sources, then run `make notebooks`")
            return 1
        print(f"notebooks: all {len(sources)} match their sources")
    elif errors:
        print(f"notebooks: {len(errors)} sources in error; their notebooks were not written")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
