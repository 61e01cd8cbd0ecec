"""Helpers for the notebook sources in this folder: each `NN-name.py` defines `cells`, a list of
markdown and code cells, and `scripts/notebooks.py` (`make notebooks`) writes `../NN-name.ipynb`
from it: ids, no outputs, the kit's kernelspec, the shared first cell, and a note that says where
to edit.
"""
import json

FIRST_CELL = """:dep fmnist-kit = { path = "../fmnist-kit", default-features = false }
:dep tch = "=0.26.0"
// Every notebook starts with this same cell: all dependencies, then the run profile.
let profile = fmnist_kit::Profile::from_env()?;
println!("{profile}");"""

KERNELSPEC = {"display_name": "Rust (fmnist-kit)", "language": "rust", "name": "fmnist-kit"}
LANGUAGE_INFO = {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust",
                 "name": "Rust", "pygment_lexer": "rust", "version": ""}


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def code(text, tags=None):
    cell = {"cell_type": "code", "metadata": {}, "source": text.strip("\n"), "outputs": [], "execution_count": None}
    if tags:
        cell["metadata"]["tags"] = tags
    return cell


def notebook_json(cells, source_name):
    """The .ipynb text of `cells`; `source_name` is the source file's name (e.g. 01-visualization.py)."""
    cells = [dict(c, metadata=dict(c["metadata"])) for c in cells]
    if not cells or cells[0]["cell_type"] != "markdown":
        raise ValueError(f"{source_name}: the first cell must be the notebook's markdown introduction")
    note = (f"\n\n*Generated from [`notebooks/src/{source_name}`](src/{source_name}) by `make notebooks`: "
            "edit that file, not this notebook.*")
    cells[0] = dict(cells[0], source=cells[0]["source"] + note)
    for i, c in enumerate(cells):
        c["id"] = f"c{i:02d}"
    nb = {
        "cells": cells,
        "metadata": {
            "fmnist_kit": {"generated_from": f"notebooks/src/{source_name}"},
            "kernelspec": KERNELSPEC,
            "language_info": LANGUAGE_INFO,
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
