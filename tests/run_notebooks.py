#!/usr/bin/env python3
"""Execute the walkthrough notebooks headless, one at a time, and check them.

Used by `make run` (default profile, writes out/notebooks + out/html) and `make test`
(smoke profile, writes out/smoke). A notebook fails on:
  - any cell error (compile errors and lost variables raise in nbclient);
  - stderr output containing a panic or a torch error (evcxr reports those cells as "ok");
  - a cell tagged `expect-image` that produced no image/png output;
  - a check cell (the code cell tagged `check`; the last code cell where none is) that printed no
    summary line: a line lost between the kernel and the notebook would otherwise pass unseen.
Networks are trained anew in every run (FMNIST_TRAIN_AGAIN=1): a checkpoint folder of an earlier run
is not read back, unless --read-back is given.
Prints one line per notebook and a closing 'N passed, N failed' line; exits non-zero on failure.
"""
import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

BAD_STDERR = [
    re.compile(r"panicked at"),
    re.compile(r"Internal torch error"),
    re.compile(r"^\s*Error\b", re.M),
    re.compile(r"TchError"),
    re.compile(r"Segmentation fault|SIGSEGV|Child process terminated", re.I),
]


def cell_problems(nb):
    """Problems found in an executed notebook: a list of strings."""
    problems = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for n, cell in enumerate(code_cells, 1):
        head = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
        where = f"code cell {n} ({head!r})"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"{where}: error {out.get('ename')}: {out.get('evalue')}")
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                for pat in BAD_STDERR:
                    m = pat.search(text)
                    if m:
                        line = text[max(0, m.start() - 80): m.end() + 200].strip()
                        problems.append(f"{where}: stderr matches {pat.pattern!r}: {line}")
                        break
        tags = cell.get("metadata", {}).get("tags", [])
        if "expect-image" in tags:
            has_png = any(
                out.get("output_type") in ("display_data", "execute_result")
                and "image/png" in out.get("data", {})
                for out in cell.get("outputs", [])
            )
            if not has_png:
                problems.append(f"{where}: tagged expect-image but produced no image/png output")
    return problems


def write_atomic(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_cell(nb):
    """The notebook's check cell: the code cell tagged `check` (the exercises' try-it cells come after it), else
    the last code cell; None when there is no code cell."""
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code_cells if "check" in c.get("metadata", {}).get("tags", [])]
    return (tagged or code_cells or [None])[-1]


def last_stdout_line(nb) -> str:
    """The last line the check cell printed: each notebook's check cell prints its summary."""
    cell = check_cell(nb)
    if cell is None:
        return ""
    text = "".join(
        "".join(o.get("text", "")) for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else ""


def save_figures(nb, folder: Path, stem: str):
    import base64

    folder.mkdir(parents=True, exist_ok=True)
    # Figures of an earlier run of this notebook (cells may have moved since) would be stale.
    for old in folder.glob(f"{stem}-cell*.png"):
        old.unlink()
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for n, cell in enumerate(code_cells, 1):
        k = 0
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png") if out.get("output_type") in ("display_data", "execute_result") else None
            if png:
                k += 1
                target = folder / f"{stem}-cell{n}-{k}.png"
                tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                tmp.write_bytes(base64.b64decode(png))
                os.replace(tmp, target)


def render_html(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/[0-9]*.ipynb)")
    ap.add_argument("--profile", default=os.environ.get("FMNIST_PROFILE", "quick"))
    ap.add_argument("--out", default="out/notebooks", help="folder for executed notebooks")
    ap.add_argument("--html", default=None, help="folder for HTML renderings (none if omitted)")
    ap.add_argument("--figures", default=None, help="folder to save every PNG output into (NOTEBOOK-cellN-K.png)")
    ap.add_argument("--kernel", default="fmnist-kit-batch")
    ap.add_argument("--cell-timeout", type=int, default=1800)
    ap.add_argument("--read-back", action="store_true",
                    help="let the notebooks read back finished runs from their checkpoint folders")
    ap.add_argument("--expect-failure", action="store_true",
                    help="succeed only if every notebook FAILS (to test this harness itself)")
    args = ap.parse_args()

    root = Path(__file__).resolve().parent.parent
    notebooks = [Path(p) for p in args.notebooks] or sorted((root / "notebooks").glob("[0-9]*.ipynb"))
    if not notebooks:
        print("no notebook found", file=sys.stderr)
        return 2
    os.environ["FMNIST_PROFILE"] = args.profile
    if args.read_back:
        os.environ.pop("FMNIST_TRAIN_AGAIN", None)
    else:
        os.environ["FMNIST_TRAIN_AGAIN"] = "1"
    out_dir = Path(args.out)
    passed, failed = 0, 0
    summary = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            kernel_name=args.kernel,
            timeout=args.cell_timeout,
            startup_timeout=180,
            allow_errors=False,
            resources={"metadata": {"path": str(path.resolve().parent)}},
        )
        start = time.time()
        problems = []
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
            problems.append(f"execution stopped: {type(e).__name__}: {str(e).strip()[-1500:]}")
        problems += [p for p in cell_problems(nb) if p not in problems]
        if not problems and not last_stdout_line(nb):
            problems.append("the check cell printed no summary line")
        seconds = time.time() - start
        out_nb = out_dir / path.name
        write_atomic(out_nb, nbformat.writes(nb))
        html_note = ""
        if args.html:
            out_html = Path(args.html) / (path.stem + ".html")
            write_atomic(out_html, render_html(nb))
            html_note = f", HTML {out_html}"
        if args.figures:
            save_figures(nb, Path(args.figures), path.stem)
        ok = not problems
        if args.expect_failure:
            ok = not ok
        status = "ok" if ok else "FAILED"
        print(f"{status:6} {path.name}  {seconds:7.1f} s  ({args.profile}; executed copy {out_nb}{html_note})", flush=True)
        summary_line = last_stdout_line(nb)
        if summary_line and not problems:
            print(f"       {summary_line}", flush=True)
        if problems and not args.expect_failure:
            for p in problems:
                print(f"       - {p}", flush=True)
        if args.expect_failure and problems:
            print(f"       (expected failure detected: {problems[0][:200]})", flush=True)
        passed += ok
        failed += not ok
        summary.append({"notebook": path.name, "ok": ok, "seconds": round(seconds, 1), "problems": problems})
    write_atomic(out_dir / "run-summary.json", json.dumps({"profile": args.profile, "notebooks": summary}, indent=2))
    print(f"notebooks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
