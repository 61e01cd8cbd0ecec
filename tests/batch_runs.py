#!/usr/bin/env python3
"""Two batch runs at once on one cache, as `make run` beside `make test` (or two `make run`) are: two
run_notebooks.py processes start notebook 01 (smoke) at the same moment, each with its own artifacts and output
folders. Each batch kernel takes a build folder of its own (scripts/evcxr/kernel.sh: `batch`, `batch-2`, ...), so
both must pass, and the second must say which folder it builds in and why.

    python tests/batch_runs.py      # make test runs this
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01-visualization.ipynb"


def main():
    with tempfile.TemporaryDirectory(prefix="fmnist-batch-runs-") as tmp:
        procs = []
        start = time.time()
        for name in ("a", "b"):
            env = dict(os.environ, FMNIST_ARTIFACTS=str(Path(tmp) / name / "artifacts"))
            log = open(Path(tmp) / f"{name}.log", "w")
            procs.append((name, log, subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "run_notebooks.py"), "--profile", "smoke",
                 "--out", str(Path(tmp) / name / "out"), str(NOTEBOOK)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)))
        failures, logs = [], {}
        for name, log, p in procs:
            code = p.wait(timeout=1800)
            log.close()
            logs[name] = (Path(tmp) / f"{name}.log").read_text(encoding="utf-8", errors="replace")
            if code != 0 or "notebooks: 1 passed, 0 failed" not in logs[name]:
                failures.append(f"run {name} exited {code}:\n{logs[name][-1500:]}")
        seconds = time.time() - start
        said = [line.strip() for text in logs.values() for line in text.splitlines() if line.startswith("[kernel]")]
        moved = [line for line in said if "is in use by another kernel" in line]
        if not failures and not moved:
            failures.append("neither run said it built in a folder of its own:\n" + "\n".join(
                f"--- {n}\n{t[-800:]}" for n, t in logs.items()))
        if failures:
            print("FAILED batch runs: " + "\n".join(failures))
            return 1
        print(f"ok     two batch runs at once on one cache both passed in {seconds:.0f} s; " + "; ".join(said))
        return 0


if __name__ == "__main__":
    sys.exit(main())
