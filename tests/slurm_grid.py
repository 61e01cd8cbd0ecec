"""The grid search on a real one-node Slurm cluster, with the recipe docs/cli.md documents.

1. A cluster in a temporary folder: munged with its own key and socket, slurmctld and slurmd as
   root, their config, state, spool, pid files and logs there, free ports, SLURM_CONF pointing
   there. The node is the short hostname with the CPUs and memory `slurmd -C` reports.
2. An unprivileged user (created once, `fmnist-slurm`) submits the `grid_on_slurm` function, read
   from docs/cli.md, for the smoke grid in 4 shards into a shared folder: a job array and a final
   job that depends on it with `afterany`.
3. One array task is cancelled with `scancel` after its first fit. The final job must fail and
   name that shard; the task is resubmitted alone with a new final job, which must finish.
4. The report (points, fold scores, mean scores, ranking) and the refit's test accuracy must equal
   a single-process `fmnist grid` on the same data. Every daemon is stopped, and no process of the
   cluster is left running.

Run by `make test-slurm` (python tests/slurm_grid.py), after `FMNIST_SLURM=1 scripts/setup.sh`
installed Debian's slurm-wlm and munge; needs root (the daemons) and the fmnist binary on PATH.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER = "fmnist-slurm"
SHARDS = 4
KILLED = 2  # the array task cancelled midway; with 2 CPUs it starts at once, beside task 1
DAEMONS = ("munged", "slurmctld", "slurmd", "slurmstepd")


class Failure(Exception):
    pass


def log(msg):
    print(f"[slurm] {msg}", flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def free_port(start):
    return int(run([sys.executable, str(ROOT / "scripts/free_port.py"), str(start), "127.0.0.1"]))


def documented_function():
    """The `grid_on_slurm` function exactly as docs/cli.md shows it."""
    text = (ROOT / "docs/cli.md").read_text()
    m = re.search(r"^grid_on_slurm\(\) \{\n.*?^\}\n", text, re.S | re.M)
    if not m:
        raise Failure("docs/cli.md has no `grid_on_slurm() { ... }` function")
    return m.group(0)


def link_tree(src, dst):
    """A hard-linked copy (fast, no space) of a folder the job user cannot reach through /root."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(src), str(dst)], capture_output=True).returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)


class Cluster:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.conf = tmp / "slurm.conf"
        self.socket = tmp / "munge/munge.socket"

    def start(self):
        t = self.tmp
        for d in ("munge", "state", "spool", "log", "run"):
            (t / d).mkdir(mode=0o755)
        key = t / "munge/munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.socket}",
                              f"--key-file={key}", f"--log-file={t}/log/munged.log",
                              f"--pid-file={t}/run/munged.pid", f"--seed-file={t}/munge/munged.seed"])
        self.wait_for(lambda: self.socket.exists(), "munged's socket", 20)
        node = run(["slurmd", "-C"]).splitlines()[0]  # NodeName=... CPUs=... RealMemory=...
        host = run(["hostname", "-s"]).strip()
        if not node.startswith(f"NodeName={host} "):
            raise Failure(f"slurmd -C names another node than `hostname -s` ({host}): {node}")
        ctld_port = free_port(16817)
        slurmd_port = free_port(ctld_port + 1)
        self.conf.write_text(f"""ClusterName=fmnisttest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool
SlurmctldPidFile={t}/run/slurmctld.pid
SlurmdPidFile={t}/run/slurmd.pid
SlurmctldLogFile={t}/log/slurmctld.log
SlurmdLogFile={t}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=3600
{node} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        self.conf.chmod(0o644)
        os.environ["SLURM_CONF"] = str(self.conf)
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self.spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self.wait_for(lambda: self.sinfo() == "idle", "the node idle in sinfo", 60)
        log(f"cluster up: node {host}, slurmctld port {ctld_port}, slurmd port {slurmd_port}")

    def spawn(self, name, cmd):
        out = open(self.tmp / f"log/{name}.out", "w")
        self.procs.append((name, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True)))

    def sinfo(self):
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    def wait_for(self, ready, what, seconds):
        end = time.time() + seconds
        while time.time() < end:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise Failure(f"{name} exited ({p.returncode}): {self.tail(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise Failure(f"no {what} after {seconds} s; " + "; ".join(self.tail(n) for n, _ in self.procs))

    def tail(self, name):
        text = ""
        for f in (self.tmp / f"log/{name}.out", self.tmp / f"log/{name}.log"):
            if f.exists():
                text += f.read_text(errors="replace")
        return f"{name}: " + " | ".join(text.strip().splitlines()[-5:])

    def stop(self):
        """Cancels every job, then stops the daemons in reverse order; returns what is still running."""
        if self.conf.exists() and any(n == "slurmctld" for n, _ in self.procs):
            subprocess.run(["scancel", "--full", "--user", USER], capture_output=True)
            end = time.time() + 30
            while time.time() < end and subprocess.run(
                    ["squeue", "-h"], capture_output=True, text=True).stdout.strip():
                time.sleep(0.5)
        for name, p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        # slurmstepd leaves slurmd's session: give an ending one a few seconds. A zombie is not running.
        end = time.time() + 15
        while True:
            ps = run(["ps", "-eo", "pid=,stat=,comm=,args="]).splitlines()
            left = [l.strip() for l in ps if len(l.split()) >= 3 and l.split()[2] in DAEMONS
                    and not l.split()[1].startswith("Z") and (str(self.tmp) in l or "slurmstepd" in l)]
            if not left or time.time() > end:
                return left
            time.sleep(0.5)


def job(jid):
    """`scontrol show job` of one job (or array task) as a dict."""
    out = run(["scontrol", "show", "job", "-o", jid])
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def wait_job(jid, seconds):
    end = time.time() + seconds
    while time.time() < end:
        state = job(jid)["JobState"]
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state
        time.sleep(0.5)
    raise Failure(f"job {jid} still {state} after {seconds} s")


def rows(report):
    """What the report says, in rank order, without the fits' wall times."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in report["rows"]]


def main():
    start = time.time()
    if os.geteuid() != 0:
        raise Failure("the one-node cluster's daemons run as root: run it as root")
    for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
        if not shutil.which(tool):
            raise Failure(f"{tool} is not installed: run `FMNIST_SLURM=1 scripts/setup.sh` (make test-slurm does)")
    fmnist, data = shutil.which("fmnist"), os.environ.get("FMNIST_DATA")
    if not fmnist or not data or not Path(data).is_file():
        raise Failure("needs the fmnist binary on PATH and FMNIST_DATA (source scripts/env.sh; make data)")
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER])
        log(f"created the unprivileged user {USER}")

    tmp = Path(tempfile.mkdtemp(prefix="fmnist-slurm-"))
    tmp.chmod(0o755)
    cluster = Cluster(tmp)
    try:
        # What the jobs run, where the job user can read it: the binary, libtorch, the data.
        torch_lib = Path(os.path.realpath(os.environ["VIRTUAL_ENV"])) / "lib"
        torch_lib = next(torch_lib.glob("python3*/site-packages/torch/lib"))
        site = torch_lib.parent.parent
        link_tree(torch_lib, tmp / "site-packages/torch/lib")
        if (site / "nvidia").is_dir():  # libtorch's RUNPATH finds ../../nvidia/*/lib from torch/lib
            link_tree(site / "nvidia", tmp / "site-packages/nvidia")
        (tmp / "bin").mkdir()
        shutil.copy2(fmnist, tmp / "bin/fmnist")
        shutil.copy2(data, tmp / "data.tar.gz")
        shared = tmp / "shared"
        shared.mkdir()
        shutil.chown(shared, USER)

        t0 = time.time()
        single = json.loads(run([fmnist, "grid", "--profile", "smoke", "--out", str(tmp / "single"),
                                 "--json", "--no-tensorboard"], env={**os.environ, "FMNIST_DATA": str(tmp / "data.tar.gz")}))
        log(f"single process: {single['fits_run']} fits and the refit in {time.time() - t0:.0f} s")

        cluster.start()
        grid = shared / "grid"
        function = documented_function()
        job_env = {
            "PATH": f"{tmp}/bin:/usr/bin:/bin", "HOME": str(shared), "LANG": "C.UTF-8",
            "LD_LIBRARY_PATH": str(tmp / "site-packages/torch/lib"), "SLURM_CONF": str(cluster.conf),
            "FMNIST_DATA": str(tmp / "data.tar.gz"), "FMNIST_CACHE_DIR": str(shared / "cache"),
            "PROFILE": "smoke", "GRID": str(grid), "N": str(SHARDS),
        }

        def submit(tasks):
            out = subprocess.run(["runuser", "-u", USER, "--", "env", "-i",
                                  *[f"{k}={v}" for k, v in job_env.items()],
                                  "bash", "-euc", f"{function}grid_on_slurm {tasks}"],
                                 cwd=shared, capture_output=True, text=True)
            if out.returncode != 0:
                raise Failure(f"grid_on_slurm {tasks} as {USER}: {out.stderr.strip()}")
            m = re.search(r"shards: job (\d+), final: job (\d+)", out.stdout)
            if not m:
                raise Failure(f"grid_on_slurm {tasks} printed no job ids: {out.stdout.strip()}")
            array, final = m.groups()
            log(f"{USER} submitted grid_on_slurm {tasks}: array job {array}, final job {final}")
            return array, final

        # 1. The whole array, one task cancelled after its first fit.
        array, final = submit(f"1-{SHARDS}")
        killed_out = shared / f"slurm-{array}_{KILLED}.out"
        fit_line = re.compile(r"^fit \d+/\d+ \(shard", re.M)
        end = time.time() + 120
        while not (killed_out.exists() and fit_line.search(killed_out.read_text(errors="replace"))):
            if time.time() > end:
                raise Failure(f"task {array}_{KILLED} wrote no fit in 120 s: {job(f'{array}_{KILLED}')}")
            time.sleep(0.05)
        run(["scancel", f"{array}_{KILLED}"])
        final_state = wait_job(final, 300)
        killed = job(f"{array}_{KILLED}")
        fits_before = len(fit_line.findall(killed_out.read_text(errors="replace")))
        if killed["JobState"] != "CANCELLED":
            raise Failure(f"task {KILLED} was not cancelled midway (it ended {killed['JobState']} after "
                          f"{fits_before} fits)")
        said = (shared / f"slurm-{final}.out").read_text(errors="replace")
        missing = f"shard(s) {KILLED}/{SHARDS} did not finish"
        if final_state != "FAILED" or missing not in said:
            raise Failure(f"the final job ended {final_state}, expected FAILED saying {missing!r}: {said}")
        log(f"task {KILLED} cancelled after {fits_before} fit(s); final job {final} FAILED: "
            + next(l for l in said.splitlines() if missing in l).strip())

        # 2. The documented resubmission of that task and a new final job.
        array2, final2 = submit(str(KILLED))
        state = wait_job(final2, 300)
        said2 = (shared / f"slurm-{final2}.out").read_text(errors="replace")
        if state != "COMPLETED":
            raise Failure(f"the second final job ended {state}: {said2}")
        rerun = (shared / f"slurm-{array2}_{KILLED}.out").read_text(errors="replace")
        m = re.search(r"(\d+) fits to run, (\d+) already recorded", rerun)
        if not m or int(m.group(2)) < fits_before:
            raise Failure(f"the resubmitted task did not resume the recorded fits: {rerun[:400]}")
        log(f"resubmitted task {KILLED}: {m.group(1)} fits run, {m.group(2)} read back; "
            f"final job {final2} COMPLETED")

        # 3. Equal to one process.
        report = json.loads((grid / "report.json").read_text())
        if rows(report) != rows(single["report"]):
            raise Failure("the report on Slurm differs from the single process's")
        refit = json.loads((grid / "refit/refit.json").read_text())
        if refit["test_accuracy"] != single["refit_test_accuracy"] or refit["point"] != single["best"]["point"]:
            raise Failure(f"refit on Slurm {refit['point']} {refit['test_accuracy']} != single process "
                          f"{single['best']['point']} {single['refit_test_accuracy']}")
        log(f"report equal to the single process: {len(report['rows'])} points, same fold scores and "
            f"ranking; refit {refit['point']} test accuracy {refit['test_accuracy']} in both")
    finally:
        left = cluster.stop()
        if not left:
            shutil.rmtree(tmp, ignore_errors=True)
    if left:
        raise Failure(f"still running after the daemons were stopped: {left} (logs kept in {tmp})")
    log(f"PASSED in {time.time() - start:.0f} s; every daemon stopped, nothing left running")


if __name__ == "__main__":
    try:
        main()
    except (Failure, subprocess.CalledProcessError) as e:
        detail = f"{e}" + (f": {e.stderr.strip()}" if getattr(e, "stderr", None) else "")
        sys.exit(f"slurm_grid: FAILED: {detail}")
