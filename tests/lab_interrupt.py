#!/usr/bin/env python3
"""Interrupts, output and two kernels, through JupyterLab's server as its front end uses it (scripts/lab.sh,
sessions over the REST API, cells over the kernel's websocket, interrupts by POST /api/kernels/ID/interrupt):

1. a CNN training cell interrupted in its second epoch stops within seconds and returns; the next cells use its
   variables (the run says it was interrupted after epoch 1), and running the training again finishes it;
2. an interrupt while no cell runs keeps every variable;
3. a plain Rust loop stops at one interrupt;
4. a cell whose last act is a println, run many times, delivers every line before the cell is reported done;
5. two notebooks open side by side (two kernels) both compile and run their cells;
6. notebook 02 itself, quick profile, as a user runs it in JupyterLab: its training cell interrupted after the
   first epoch, then its curves, test accuracy and check cells; the training cell run again continues with
   epoch 2 and finishes; in a new kernel (as after a restart), running it from the top reads the finished
   run back;
7. notebook 04 itself, quick profile: its fine-tuning cell (stage 2) interrupted after the first epoch, then its
   curves cell, then the fine-tuning cell run again continues with epoch 2 and finishes. (Its later cells, the
   network from scratch, the few-label study and t-SNE, use none of the fine-tuning's variables and are left to
   run_notebooks.py, for time.)

    python tests/lab_interrupt.py        # make test runs this

Exits 0 when everything holds, 1 otherwise (with what failed).
"""
import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from labtools import Failure, LabServer  # noqa: E402
from lab_server import BAD, FIRST_CELL, execute  # noqa: E402

SETUP = """use fmnist_kit::{data, models::ModelKind, run::{RunOptions, TrainingRun}, Profile, ProfileName};
let data = data::load(data::default_data_path())?;
let mut profile = Profile::named(ProfileName::Quick);
profile.validation_subset = Some(1000);
profile.test_subset = Some(1000);
let out = std::env::temp_dir().join(format!("fmnist-interrupt-test-{}", std::process::id()));
let mut run = TrainingRun::prepare(ModelKind::Cnn4, &profile, &data, RunOptions {
    epochs: Some(2), out: Some(out.clone()), train_again: true, ..RunOptions::default() })?;
println!("{}", run.describe());"""
FIT = "let result = run.fit()?;\nprintln!(\"fit returned: {} after {:?} epochs\", result.stop_reason, result.interrupted_after);"
AFTER = ("println!(\"variables kept: interrupted_after {:?}, {} epochs in the history, test accuracy {:.4}\", "
         "result.interrupted_after, run.trainer.history.epochs.len(), result.test_accuracy);\n"
         "assert_eq!(result.interrupted_after, Some(1));\nassert_eq!(run.trainer.history.epochs.len(), 1);")
AGAIN = ("let result = run.fit()?;\nassert_eq!(result.interrupted_after, None);\n"
         "assert_eq!(run.trainer.history.epochs.len(), 2);\nprintln!(\"continued and finished: {} epochs, test accuracy {:.4}\", "
         "result.epochs_run, result.test_accuracy);\nstd::fs::remove_dir_all(&out)?;")
KEEP = "println!(\"after the idle interrupt: {} epochs, test accuracy {:.4}\", run.trainer.history.epochs.len(), result.test_accuracy);"
LOOP = "let mut turns = 0u64;\nloop { std::thread::sleep(std::time::Duration::from_millis(50)); turns += 1; }"


def clean(name, r):
    if r["errors"]:
        raise Failure(f"cell {name!r}: {r['errors'][0]}\n{r['stdout'][-600:]}{r['stderr'][-600:]}")
    for pat in BAD:
        if pat.search(r["stderr"]):
            raise Failure(f"cell {name!r}: stderr matches {pat.pattern!r}: {r['stderr'][-400:]}")
    return r


async def connect(lab, kernel_id):
    return await websocket_connect(f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?token={lab.token}")


async def run_interrupted(lab, ws, session, kernel_id, name, code, wait_for, timeout):
    """Runs `code`, interrupts the kernel once `wait_for` (a stdout/stderr substring) has arrived, and returns the
    cell's result and the seconds from the interrupt to the cell's end."""
    live = {}
    task = asyncio.ensure_future(execute(ws, session, name, code, timeout, out=live))
    deadline = time.time() + timeout
    seen = ""
    while not re.search(wait_for, seen):
        if task.done():
            raise Failure(f"cell {name!r} ended before {wait_for!r} appeared: {task.result()['stdout'][-400:]}")
        if time.time() > deadline:
            raise Failure(f"cell {name!r}: {wait_for!r} did not appear within {timeout} s")
        await asyncio.sleep(0.5)
        seen = live.get("stdout", "") + live.get("stderr", "")
    start = time.time()
    lab.api("POST", f"/api/kernels/{kernel_id}/interrupt")
    r = await task
    return r, time.time() - start


def main():
    lines = []
    lab = LabServer(8900, log_name="lab-interrupt.log", profile="smoke")
    with lab:
        a = lab.api("POST", "/api/sessions", {"path": "interrupt-test-a.ipynb", "type": "notebook", "name": "",
                                               "kernel": {"name": "fmnist-kit"}}, timeout=60)
        b = lab.api("POST", "/api/sessions", {"path": "interrupt-test-b.ipynb", "type": "notebook", "name": "",
                                               "kernel": {"name": "fmnist-kit"}}, timeout=60)
        ka, kb = a["kernel"]["id"], b["kernel"]["id"]

        async def scenario():
            wa, wb = await connect(lab, ka), await connect(lab, kb)
            sa, sb = uuid.uuid4().hex, uuid.uuid4().hex
            # 5. two kernels side by side: both compile the kit and load the data at the same time.
            data_cell = "let data = fmnist_kit::data::load(fmnist_kit::data::default_data_path())?;\nprintln!(\"{} images\", data.train.len());"
            start = time.time()
            ra, rb = await asyncio.gather(execute(wa, sa, "first cell (a)", FIRST_CELL, 900),
                                          execute(wb, sb, "first cell (b)", FIRST_CELL, 900))
            clean("first cell (a)", ra), clean("first cell (b)", rb)
            ra, rb = await asyncio.gather(execute(wa, sa, "data (a)", data_cell, 300),
                                          execute(wb, sb, "data (b)", data_cell, 300))
            clean("data (a)", ra), clean("data (b)", rb)
            lines.append(f"two kernels side by side compiled and loaded the data in {time.time() - start:.0f} s "
                         f"({ra['stdout'].strip()} / {rb['stdout'].strip()})")
            # 4. every line a cell prints as its last act arrives before the cell is reported done.
            missing = []
            for i in range(40):
                r = clean(f"print {i}", await execute(wb, sb, f"print {i}", f"println!(\"last line {i}\");", 120))
                if f"last line {i}" not in r["stdout"]:
                    missing.append(i)
            if missing:
                raise Failure(f"the last printed line of {len(missing)} of 40 cells arrived after the cell ended: {missing}")
            lines.append("40 cells whose last act is a println: every line arrived before the cell was reported done")
            # 1. a training cell interrupted in its second epoch.
            clean("prepare", await execute(wa, sa, "prepare", SETUP, 300))
            r, seconds = await run_interrupted(lab, wa, sa, ka, "fit", FIT, r"1/2  train loss", 600)
            clean("fit", r)
            if "fit returned: interrupted after Some(1) epochs" not in r["stdout"]:
                raise Failure(f"the interrupted fit did not return its interrupted result: {r['stdout'][-600:]}{r['stderr'][-600:]}")
            lines.append(f"the training cell, interrupted in epoch 2, returned {seconds:.1f} s after the interrupt "
                         f"(scoring included): {r['stdout'].strip().splitlines()[-1]}")
            r = clean("after", await execute(wa, sa, "after", AFTER, 120))
            lines.append(r["stdout"].strip())
            # 2. an idle interrupt keeps the variables.
            lab.api("POST", f"/api/kernels/{ka}/interrupt")
            await asyncio.sleep(2)
            r = clean("after the idle interrupt", await execute(wa, sa, "after the idle interrupt", KEEP, 120))
            lines.append(r["stdout"].strip())
            r = clean("fit again", await execute(wa, sa, "fit again", AGAIN, 600))
            lines.append(r["stdout"].strip().splitlines()[-1])
            # 3. a plain loop stops at one interrupt (the cell ends with an error; nothing handles SIGINT there).
            r, seconds = await run_interrupted(lab, wb, sb, kb, "loop", "println!(\"looping\");\n" + LOOP, r"looping", 300)
            if not r["errors"] and r["reply"] != "error":
                raise Failure(f"the plain loop did not stop with an error: {r}")
            lines.append(f"a plain loop stopped {seconds:.1f} s after one interrupt ({(r['errors'] or ['error'])[0][:80]})")
            wa.close(), wb.close()

        asyncio.run(scenario())
        lab.api("DELETE", f"/api/sessions/{a['id']}")
        lab.api("DELETE", f"/api/sessions/{b['id']}")
    if lab.leftover:
        raise Failure(lab.leftover)
    notebook_02(lines)
    notebook_04(lines)
    for line in lines:
        print(f"ok     {line}")
    return 0


def code_cells(name):
    """The sources of a notebook's code cells, and the position among them of its check cell (tagged `check`)."""
    nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    check = next((i for i, c in enumerate(code) if "check" in c.get("metadata", {}).get("tags", [])), len(code) - 1)
    return ["".join(c["source"]) for c in code], check


async def interrupt_in_first_epoch(lab, ws, session, kernel, tag, cells, at, timeout):
    """Runs `cells` before `at`, then cell `at` (a training cell) interrupted in its first epoch; returns its
    result (checked clean) and the seconds it took to return after the interrupt."""
    for i in range(at):
        clean(f"{tag} cell {i}", await execute(ws, session, f"{tag} cell {i}", cells[i], timeout))
    r, seconds = await run_interrupted(lab, ws, session, kernel, f"{tag} training", cells[at],
                                       r"epoch\s+1/\d+\s+train loss", timeout)
    return clean(f"{tag} training", r), seconds


@contextlib.contextmanager
def quick_lab(port, log_name, path):
    """JupyterLab in the quick profile, its artifacts in a temporary folder, with one notebook session open:
    yields the server and the session."""
    with tempfile.TemporaryDirectory(prefix="fmnist-interrupt-artifacts-") as artifacts:
        os.environ["FMNIST_ARTIFACTS"] = artifacts
        lab = LabServer(port, log_name=log_name, profile="quick")
        try:
            with lab:
                yield lab, lab.api("POST", "/api/sessions", {"path": path, "type": "notebook", "name": "",
                                                            "kernel": {"name": "fmnist-kit"}}, timeout=60)
        finally:
            os.environ.pop("FMNIST_ARTIFACTS", None)
        if lab.leftover:
            raise Failure(lab.leftover)


def notebook_02(lines):
    """Scenario 6: notebook 02's own cells, quick profile, its artifacts in a temporary folder."""
    cells, check = code_cells("02-training-cnn.ipynb")
    train = next(i for i, c in enumerate(cells) if "run.fit()" in c)
    prepare = next(i for i, c in enumerate(cells) if "TrainingRun::prepare" in c)
    with quick_lab(8910, "lab-notebook02.log", "interrupt-test-02.ipynb") as (lab, s):
        kernel = s["kernel"]["id"]

        async def scenario():
            ws, session = await connect(lab, kernel), uuid.uuid4().hex
            r, seconds = await interrupt_in_first_epoch(lab, ws, session, kernel, "02", cells, train, 900)
            if "interrupted after" not in r["stdout"]:
                raise Failure(f"notebook 02's training cell did not report the interrupt: {r['stdout'][-600:]}")
            for i in range(train + 1, len(cells)):
                r = clean(f"02 cell {i}", await execute(ws, session, f"02 cell {i}", cells[i], 600))
                if i == check:
                    summary = r["stdout"].strip().splitlines()[-1]
            lines.append(f"notebook 02 (quick): training interrupted after epoch 1 returned in {seconds:.1f} s; "
                         f"curves, test accuracy, the check cell and the try-it cell ran: {summary}")
            r = clean("02 training again", await execute(ws, session, "02 training again", cells[train], 1200))
            first = re.search(r"epoch\s+(\d+)/(\d+)\s+train loss", r["stdout"])
            if not first or first.group(1) != "2" or "completed" not in r["stdout"]:
                raise Failure(f"running the training cell again did not continue with epoch 2: {r['stdout'][-800:]}")
            lines.append(f"notebook 02: the training cell run again continued with epoch 2 of {first.group(2)} "
                         f"and finished ({r['stdout'].strip().splitlines()[-1]})")
            ws.close()
            # A new kernel process, as after a restart: every variable is gone, the checkpoint
            # folder stays. (A new session rather than POST .../restart: evcxr 0.22's zeromq
            # sockets sometimes reset on a restart and the server then restarts it once more.)
            lab.api("DELETE", f"/api/sessions/{s['id']}")
            fresh = lab.api("POST", "/api/sessions", {"path": "interrupt-test-02-again.ipynb", "type": "notebook",
                                                       "name": "", "kernel": {"name": "fmnist-kit"}}, timeout=60)
            ws, session = await connect(lab, fresh["kernel"]["id"]), uuid.uuid4().hex
            for i in range(train + 1):
                r = clean(f"02 cell {i} after a restart",
                          await execute(ws, session, f"02 cell {i} after a restart", cells[i], 900))
                if i == prepare:
                    said = r["stdout"]
            if "read back" not in said or re.search(r"epoch\s+\d+/\d+\s+train loss", r["stdout"]):
                raise Failure(f"after a restart notebook 02 did not read its finished run back: {said[-600:]}"
                              f"{r['stdout'][-400:]}")
            lines.append("notebook 02 in a new kernel, run from the top: "
                         + next(l for l in said.splitlines() if "read back" in l).strip()[:160])
            ws.close()
            lab.api("DELETE", f"/api/sessions/{fresh['id']}")

        asyncio.run(scenario())


def notebook_04(lines):
    """Scenario 7: notebook 04's cells up to its fine-tuning and curves, quick profile, its artifacts in a temporary
    folder (the trunk's features come from the feature cache once extracted)."""
    cells, _ = code_cells("04-transfer-learning.ipynb")
    tune = next(i for i, c in enumerate(cells) if "run.stage_two()" in c)
    curves = tune + 1
    if "run.trainer" not in cells[curves]:
        raise Failure(f"notebook 04's cell after the fine-tuning is not its curves: {cells[curves][:200]}")
    with quick_lab(8920, "lab-notebook04.log", "interrupt-test-04.ipynb") as (lab, s):
        kernel = s["kernel"]["id"]

        async def scenario():
            ws, session = await connect(lab, kernel), uuid.uuid4().hex
            r, seconds = await interrupt_in_first_epoch(lab, ws, session, kernel, "04", cells, tune, 1800)
            if "running stage 2 again continues" not in r["stdout"] + r["stderr"]:
                raise Failure(f"notebook 04's fine-tuning cell did not report the interrupt: {r['stdout'][-600:]}")
            said = r["stdout"].strip().splitlines()[-1]
            clean("04 curves", await execute(ws, session, "04 curves", cells[curves], 300))
            lines.append(f"notebook 04 (quick): fine-tuning interrupted after epoch 1 returned in {seconds:.1f} s "
                         f"({said}); its curves cell ran")
            r = clean("04 fine-tuning again", await execute(ws, session, "04 fine-tuning again", cells[tune], 1800))
            out = r["stdout"] + r["stderr"]
            first = re.search(r"epoch\s+(\d+)/(\d+)\s+train loss", out)
            if not first or first.group(1) != "2" or "stage 2 continues after epoch 1" not in out:
                raise Failure(f"running the fine-tuning cell again did not continue with epoch 2: {out[-800:]}")
            clean("04 curves again", await execute(ws, session, "04 curves again", cells[curves], 300))
            lines.append(f"notebook 04: the fine-tuning cell run again continued with epoch 2 of {first.group(2)} "
                         f"and finished ({r['stdout'].strip().splitlines()[-1]})")
            ws.close()
            lab.api("DELETE", f"/api/sessions/{s['id']}")

        asyncio.run(scenario())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"FAILED interrupt test: {e}")
        sys.exit(1)
