#!/usr/bin/env python3
"""The server path, as a user meets it: JupyterLab started exactly as `make lab` starts it (scripts/lab.sh,
here headless on a free port), a session with the kit's kernel opened through the server's REST API, and
cells run through the kernel's websocket, as JupyterLab's front end does. Checks that the first cell (the
notebooks' shared dependency cell) and a data cell run and that a figure cell sends an image/png that decodes,
with no error and no panic; then stops the server and checks that nothing is left running.

    python tests/lab_server.py                        # make test runs this
    python tests/lab_server.py --expect-failure       # with a broken kernelspec: must fail (tests this test)

Exits 0 on success (or, with --expect-failure, when the check fails as it should).
"""
import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from labtools import Failure, LabServer  # noqa: E402


def first_cell() -> str:
    """The notebooks' shared dependency cell, as notebook 01 holds it (`scripts/notebooks.py --check`, the first
    step of make test, keeps it identical in every notebook and every source in notebooks/src/)."""
    nb = json.loads((ROOT / "notebooks" / "01-visualization.ipynb").read_text(encoding="utf-8"))
    source = next(c["source"] for c in nb["cells"] if c["cell_type"] == "code")
    return source if isinstance(source, str) else "".join(source)


FIRST_CELL = first_cell()

CELLS = [
    ("first cell", FIRST_CELL, False),
    ("data", "let data = fmnist_kit::data::load(fmnist_kit::data::default_data_path())?;\n"
             "println!(\"{} training images\", data.train.len());", False),
    ("figure", "fmnist_kit::viz::class_balance(&data.train, &data.test)?", True),
]
BAD = [re.compile(p, re.M) for p in (r"panicked at", r"Internal torch error", r"^\s*Error\b", r"TchError")]


async def execute(ws, session, name, code, timeout, out=None):
    """Sends one execute_request on the shell channel; collects the iopub messages it causes (into `out`, when
    given, as they arrive, so that a caller can watch a running cell)."""
    msg_id = uuid.uuid4().hex
    await ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
        "buffers": [],
    }))
    out = {} if out is None else out
    out.update({"name": name, "stdout": "", "stderr": "", "errors": [], "pngs": [], "reply": None})
    deadline = time.time() + timeout
    idle = False
    while not (idle and out["reply"] is not None):
        left = deadline - time.time()
        if left <= 0:
            raise Failure(f"cell {name!r}: no answer from the kernel within {timeout} s")
        try:
            raw = await asyncio.wait_for(ws.read_message(), timeout=left)
        except asyncio.TimeoutError:
            continue
        if raw is None:
            raise Failure(f"cell {name!r}: the kernel's websocket closed")
        m = json.loads(raw)
        if m.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        t, c = m["msg_type"], m["content"]
        if t == "stream":
            out[c["name"]] += c["text"]
        elif t in ("display_data", "execute_result") and "image/png" in c.get("data", {}):
            out["pngs"].append(c["data"]["image/png"])
        elif t == "error":
            out["errors"].append(f"{c.get('ename')}: {c.get('evalue')}")
        elif t == "execute_reply":
            out["reply"] = c.get("status")
            if c.get("status") == "error":
                out["errors"].append(f"{c.get('ename')}: {c.get('evalue')}")
        elif t == "status" and c.get("execution_state") == "idle":
            idle = True
    return out


def run_cells(port, token, kernel_id, timeout):
    """Runs CELLS over the kernel's websocket; one result per cell, stopping at the first error."""
    async def main():
        ws = await websocket_connect(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={token}")
        session = uuid.uuid4().hex
        results = []
        for name, code, _ in CELLS:
            r = await execute(ws, session, name, code, timeout)
            results.append(r)
            if r["errors"]:
                break
        ws.close()
        return results

    return asyncio.run(main())


def check(results):
    for (name, _, wants_png), r in zip(CELLS, results):
        if r["errors"]:
            raise Failure(f"cell {name!r}: {r['errors'][0]}")
        for pat in BAD:
            if pat.search(r["stderr"]):
                raise Failure(f"cell {name!r}: stderr matches {pat.pattern!r}: {r['stderr'][-400:]}")
        if wants_png:
            if not r["pngs"]:
                raise Failure(f"cell {name!r}: no image/png arrived")
            png = base64.b64decode(r["pngs"][-1])
            if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 1000:
                raise Failure(f"cell {name!r}: the image/png does not decode as a PNG ({len(png)} bytes)")
    if len(results) < len(CELLS):
        raise Failure("not every cell ran")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expect-failure", action="store_true", help="use a broken kernelspec; succeed only if the check fails")
    ap.add_argument("--port", type=int, default=8890, help="first port to try")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    a = ap.parse_args()
    kernel = "fmnist-kit"
    broken_dir = None
    if a.expect_failure:
        # A kernelspec whose kernel exits at once, next to the real ones.
        kernels = Path(os.environ.get("JUPYTER_DATA_DIR", "")) / "kernels"
        if not kernels.is_dir():
            print("JUPYTER_DATA_DIR/kernels not found: run through make (scripts/env.sh)", file=sys.stderr)
            return 2
        kernel = "fmnist-kit-broken-test"
        broken_dir = kernels / kernel
        broken_dir.mkdir(exist_ok=True)
        (broken_dir / "kernel.json").write_text(json.dumps(
            {"argv": ["false", "{connection_file}"], "display_name": "broken (test)", "language": "rust"}))
        a.timeout = 60
    failure, summary = None, ""
    lab = LabServer(a.port)
    try:
        with lab:
            s = lab.api("POST", "/api/sessions",
                        {"path": "server-path-test.ipynb", "type": "notebook", "name": "", "kernel": {"name": kernel}},
                        timeout=60)
            results = run_cells(lab.port, lab.token, s["kernel"]["id"], a.timeout)
            check(results)
            lab.api("DELETE", f"/api/sessions/{s['id']}")
            png = base64.b64decode(results[-1]["pngs"][-1])
            summary = (f"lab server on port {lab.port} (up in {lab.up_seconds:.1f} s): kernel {kernel} ran "
                       f"{', '.join(r['name'] for r in results)}; the figure cell sent a {len(png)}-byte PNG")
    except Exception as e:  # noqa: BLE001 - any exception here is the check failing
        failure = e
    finally:
        if broken_dir:
            for f in broken_dir.iterdir():
                f.unlink()
            broken_dir.rmdir()
    if lab.leftover and failure is None:
        failure = Failure(lab.leftover)
    if a.expect_failure:
        if failure is None:
            print("FAILED the server-path test passed with a broken kernelspec: it does not detect failures")
            return 1
        print(f"ok     server-path test with a broken kernelspec failed as it should: {str(failure)[:200]}")
        return 0
    if failure is not None:
        print(f"FAILED server-path test: {failure}")
        return 1
    print(f"ok     {summary}; {time.time() - lab.started:.1f} s in all, nothing left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
