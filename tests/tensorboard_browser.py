#!/usr/bin/env python3
"""`make tensorboard` in a real browser: Debian's Chromium, headless, driven by Selenium.

scripts/tensorboard.sh (what `make tensorboard` runs) is started on the artifacts folder of a notebook
run (`make run`, or the smoke notebooks of `make test`). The scalars page must list the CNN's runs (every
`…/cnn4…/tensorboard` folder there), both in TensorBoard's own run list (`/data/runs`) and in the page
the browser rendered, and draw at least one chart. A screenshot goes to --shots; TensorBoard is then
stopped and must leave nothing running.

    python tests/tensorboard_browser.py [--logdir artifacts] [--shots out/browser]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import CHROMEDRIVER, CHROMIUM, browser  # noqa: E402
from labtools import Failure  # noqa: E402

# What the rendered scalars page shows, through the shadow roots of TensorBoard's Polymer elements: the
# run selector's labels (every run's name) and the scalar cards with a drawn line chart.
PAGE_JS = """
const labels = [], cards = [];
function walk(node) {
  if (!node) return;
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const c of node.children || []) walk(c);
  const tag = node.tagName ? node.tagName.toLowerCase() : '';
  if (tag === 'tf-runs-selector') labels.push(...deepText(node).split('\\n'));
  if (tag === 'tf-scalar-card') cards.push(node);
}
function deepText(node) {
  let t = '';
  for (const c of (node.shadowRoot ? [node.shadowRoot, ...node.childNodes] : node.childNodes)) {
    t += c.nodeType === 3 ? c.textContent + '\\n' : deepText(c);
  }
  return t;
}
walk(document.documentElement);
const drawn = cards.filter(c => {
  const paths = [];
  (function find(n) { if (!n) return; if (n.shadowRoot) find(n.shadowRoot);
    for (const k of n.children || []) { if (k.tagName && k.tagName.toLowerCase() === 'path') paths.push(k); find(k); } })(c);
  return paths.some(p => (p.getAttribute('d') || '').length > 20);
});
return {runs: labels.map(l => l.trim()).filter(l => l), charts: drawn.length};
"""

def cnn_runs(logdir: Path):
    """The CNN's runs in TensorBoard's naming: folders with event files, relative to the log folder."""
    runs = {str(p.parent.relative_to(logdir)) for p in logdir.rglob("events.out.tfevents.*")}
    return sorted(r for r in runs if re.search(r"(^|/)cnn4[^/]*/tensorboard(/|$)", r))


def start_tensorboard(logdir: Path, log_file: Path):
    env = {**os.environ, "LOGDIR": str(logdir), "PORT": "6106"}
    out = open(log_file, "w")
    proc = subprocess.Popen([str(ROOT / "scripts/tensorboard.sh")], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    deadline = time.time() + 120
    url = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Failure(f"make tensorboard exited ({proc.returncode}): {log_file.read_text()[-800:]}")
        m = re.search(r"open:\s+(http://\S+)", log_file.read_text())
        if m:
            url = m.group(1).rstrip("/")
            try:
                with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as r:
                    return proc, url, json.loads(r.read())
            except OSError:
                pass
        time.sleep(0.5)
    raise Failure(f"TensorBoard did not answer at {url} in 120 s: {log_file.read_text()[-800:]}")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return
    raise Failure("TensorBoard's process group is still running after it was stopped")


def check(driver, logdir: Path, shots: Path):
    expected = cnn_runs(logdir)
    if not expected:
        raise Failure(f"{logdir} holds no CNN run with event files (run `make run`, or the smoke notebooks, first)")
    shots.mkdir(parents=True, exist_ok=True)
    start = time.time()
    proc, url, runs = start_tensorboard(logdir, shots / "tensorboard.log")
    try:
        # TensorBoard finds runs as it scans the folder: wait until its run list has the CNN's.
        deadline = time.time() + 60
        while not set(expected) <= set(runs) and time.time() < deadline:
            time.sleep(1)
            with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as r:
                runs = json.loads(r.read())
        if not set(expected) <= set(runs):
            raise Failure(f"TensorBoard's /data/runs lacks CNN runs {sorted(set(expected) - set(runs))}: {runs}")
        driver.get(f"{url}/#scalars")
        deadline = time.time() + 90
        page = {}
        while time.time() < deadline:
            page = driver.execute_script(PAGE_JS) or {}
            if set(expected) <= set(page.get("runs", [])) and page.get("charts", 0) > 0:
                break
            time.sleep(1)
        else:
            raise Failure(f"the scalars page at {url}/#scalars shows {page.get('charts', 0)} drawn charts; its "
                          f"run selector lists {page.get('runs')}, expected the CNN's runs {expected} in it")
        time.sleep(2)  # let the charts draw their lines before the screenshot
        shot = shots / "tensorboard-scalars.png"
        driver.save_screenshot(str(shot))
        print(f"tensorboard browser test: {url}/#scalars lists the CNN's runs {expected} among {len(runs)} "
              f"runs in its run selector, {page['charts']} scalar charts drawn, in {time.time() - start:.1f} s (screenshot {shot})")
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logdir", default=os.environ.get("FMNIST_ARTIFACTS") or str(ROOT / "artifacts"))
    ap.add_argument("--shots", default=str(ROOT / "out" / "browser"))
    a = ap.parse_args()
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            print(f"{exe} is missing: `make test-browser` installs Debian's chromium and chromium-driver", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as user_dir:
        driver = browser(user_dir)
        try:
            check(driver, Path(a.logdir).resolve(), Path(a.shots))
        except Failure as e:
            print(f"FAILED tensorboard browser test: {e}")
            return 1
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
