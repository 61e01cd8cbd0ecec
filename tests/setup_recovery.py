#!/usr/bin/env python3
"""`make setup`'s venv step (scripts/venv.sh) killed and run again repairs the venv, with a small stand-in
requirement set instead of the torch wheel (no index is used: an empty requirement set, and `json` as the module
that must import):

1. the state a kill during `python3 -m venv` leaves (python, no pip) is repaired in place by the next run;
2. the step SIGKILLed at several moments while it builds a venv, then run again, always ends with a working,
   stamped venv;
3. a stamped venv whose pip was broken afterwards is repaired too.

    python tests/setup_recovery.py      # make test runs this
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP = ROOT / "scripts" / "venv.sh"


class Failure(Exception):
    pass


def step(venv, req, lock, wait=True):
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("VIRTUAL_ENV", None)
    p = subprocess.Popen(["bash", str(STEP), str(venv), str(req), str(lock), "json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if wait:
        out, _ = p.communicate(timeout=600)
        return p.returncode, out
    return p


def works(venv):
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "--version"], capture_output=True)
    return py.exists() and pip.returncode == 0 and (venv / ".fmnist-requirements.sha256").is_file()


def main():
    lines = []
    with tempfile.TemporaryDirectory(prefix="fmnist-setup-test-") as tmp:
        tmp = Path(tmp)
        req, lock = tmp / "requirements.txt", tmp / "requirements.lock"
        req.write_text("# stand-in: nothing to install\n")
        lock.write_text("")
        # 1. python without pip, as a kill during `python3 -m venv` leaves it.
        venv = tmp / "venv-no-pip"
        subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
        rc, out = step(venv, req, lock)
        if rc != 0 or not works(venv):
            raise Failure(f"a venv without pip was not repaired (exit {rc}):\n{out}")
        lines.append("a venv left without pip was made again in place: " + out.strip().splitlines()[-1])
        # 2. killed at several moments, then run again.
        for delay in (0.2, 0.6, 1.2, 2.5):
            venv = tmp / f"venv-killed-{delay}"
            p = step(venv, req, lock, wait=False)
            time.sleep(delay)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            state = "python, no pip" if (venv / "bin" / "python").exists() and not works(venv) else (
                "working" if works(venv) else "nothing yet")
            rc, out = step(venv, req, lock)
            if rc != 0 or not works(venv):
                raise Failure(f"killed after {delay} s ({state}), the next run did not repair it (exit {rc}):\n{out}")
            lines.append(f"killed after {delay} s ({state}): the next run ended with a working venv")
        # 3. pip broken after the stamp.
        venv = tmp / "venv-killed-2.5"
        for site in (venv / "lib").glob("python3*/site-packages/pip"):
            subprocess.run(["rm", "-rf", str(site)], check=True)
        rc, out = step(venv, req, lock)
        if rc != 0 or not works(venv):
            raise Failure(f"a stamped venv with its pip removed was not repaired (exit {rc}):\n{out}")
        lines.append("a stamped venv whose pip was removed was repaired")
    for line in lines:
        print(f"ok     setup: {line}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"FAILED setup recovery: {e}")
        sys.exit(1)
