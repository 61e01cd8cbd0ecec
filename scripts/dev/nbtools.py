"""Helpers for writing the walkthrough notebooks as Python lists of cells (development aid).

The notebooks are committed as .ipynb; these helpers only keep their JSON tidy: ids, no outputs,
the kit's kernelspec, and the shared first cell.
"""
import json
from pathlib import Path

FIRST_CELL = """:dep fmnist-kit = { path = "../fmnist-kit", default-features = false }
:dep tch = "=0.26.0"
// Every notebook starts with this same cell: all dependencies, then the run profile.
let profile = fmnist_kit::Profile::from_env()?;
println!("{profile}");"""


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def code(text, tags=None):
    cell = {"cell_type": "code", "metadata": {}, "source": text.strip("\n"), "outputs": [], "execution_count": None}
    if tags:
        cell["metadata"]["tags"] = tags
    return cell


def write(path, cells):
    for i, c in enumerate(cells):
        c["id"] = f"c{i:02d}"
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Rust (fmnist-kit)", "language": "rust", "name": "fmnist-kit"},
            "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust",
                              "name": "Rust", "pygment_lexer": "rust", "version": ""},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    root = Path(__file__).resolve().parents[2]
    (root / path).write_text(json.dumps(nb, indent=1) + "\n")
