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
the same first code cell (the dependency cell) as every other source. It must end as a lesson ends: a
"## Key takeaways" cell, then a "## Exercises" cell with 3 to 5 numbered exercises and at least one code
cell tagged "try-it". And no markdown cell may state a result a run produces (an accuracy, a loss, a time):
such numbers are printed by a cell from the run's own results, so that a smoke run never contradicts its
text. The original project's published figures and the settings in ALLOWED_NUMBERS may stay in prose.

Adding a notebook: write notebooks/src/NN-name.md (copy the header and the first code cell of another
source), run `make notebooks`, commit both files. A notebook without a source is an error in --check.
"""
import argparse
import collections
import difflib
import os
import re
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


# Numbers that look like results but are not produced by a run: the original project's published
# figures (0.9135, 0.9099, its ~0.63 transfer run, its t-SNE's 162 s) and settings (rates, dropout,
# L2, smoothing, shifts; the progress line's interval).
ALLOWED_NUMBERS = {"0.9135", "0.9099", "0.63", "162 s", "0.001", "0.01", "0.05", "0.1", "0.2", "0.25", "0.3",
                   "0.5", "0.9", "20 seconds"}
# A decimal fraction (an accuracy, a loss) or a duration.
RESULT_NUMBER = re.compile(r"(?<![\w.])(?:\d[\d,]*(?:\.\d+)?\s?(?:s|min|minutes|seconds|h|hours)\b|0\.\d+)")


def hard_coded_results(markdown: str) -> list:
    """The result-like numbers of a markdown cell that are not in ALLOWED_NUMBERS (code spans and links kept out)."""
    text = re.sub(r"`[^`]*`", "", markdown)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return [m.group(0) for m in RESULT_NUMBER.finditer(text) if m.group(0) not in ALLOWED_NUMBERS]


def check_lesson(nb, rel) -> None:
    """The lesson's shape: no hard-coded results in prose; key takeaways; 3-5 exercises and a try-it cell."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            hits = hard_coded_results(cell.source)
            if hits:
                found.append(f"cell {i}: {', '.join(hits)}")
    if found:
        raise SourceError(f"{rel}: markdown states results a run produces (print them from a cell instead, "
                          f"labelled with the profile): " + "; ".join(found))
    heads = {c.source.splitlines()[0].strip(): c for c in nb.cells if c.cell_type == "markdown"}
    if "## Key takeaways" not in heads:
        raise SourceError(f"{rel}: no '## Key takeaways' cell")
    exercises = heads.get("## Exercises")
    if exercises is None:
        raise SourceError(f"{rel}: no '## Exercises' cell")
    n = len(re.findall(r"^\d+\. ", exercises.source, flags=re.M))
    if not 3 <= n <= 5:
        raise SourceError(f"{rel}: its exercises cell has {n} numbered exercises, not 3 to 5")
    if not any(c.cell_type == "code" and "try-it" in c.metadata.get("tags", []) for c in nb.cells):
        raise SourceError(f"{rel}: no code cell tagged try-it")


# The checker's own check, so that a regex that matches nothing cannot pass every source.
assert hard_coded_results("reached 0.851 in 15 minutes, the original's 0.9135 at rate 0.001") == ["0.851", "15 minutes"]
assert hard_coded_results("see `0.42` and [the figures](x.md#0.7), 0.5 s") == ["0.5 s"]


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
    check_lesson(nb, rel)
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
