#!/usr/bin/env python3
"""The walkthrough in a real browser: Debian's Chromium, headless, driven by Selenium (chromium-driver).

1. JupyterLab, started as `make lab` starts it: open notebook 01, run all its cells from JupyterLab's own
   command, wait for the kernel, and check that every cell tagged `expect-image` shows an <img> with a PNG
   that the browser decoded (naturalWidth > 0), and that no cell printed a panic or an error.
2. Every page `make run` wrote to out/html/: each loads, every <img> decoded, no error output in it.

    python tests/browser.py [--notebook notebooks/01-visualization.ipynb] [--html out/html] [--shots out/browser]

Screenshots of the JupyterLab page go to --shots. Exits non-zero on any failure.
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from labtools import Failure, LabServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# JupyterLab exposes its application object with --LabApp.expose_app_in_browser (window.jupyterapp).
STATE_JS = """
const app = window.jupyterapp;
if (!app || !app.shell.currentWidget || !app.shell.currentWidget.content) return null;
const panel = app.shell.currentWidget;
const kernel = panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.widgets.filter(c => c.model.type === 'code');
return {
  kernel: kernel ? kernel.status : null,
  path: panel.context.path,
  cells: cells.map(c => ({
    count: c.model.executionCount,
    tags: (c.model.getMetadata ? c.model.getMetadata('tags') : c.model.metadata.tags) || [],
    pngs: Array.from(c.node.querySelectorAll('.jp-OutputArea-output img')).map(i => ({
      png: i.src.startsWith('data:image/png'), width: i.naturalWidth, complete: i.complete})),
    stderr: Array.from(c.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
              .map(e => e.innerText).join('\\n'),
    errors: c.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]').length,
  })),
};
"""

PAGE_JS = """
const imgs = Array.from(document.images);
return {
  ready: document.readyState,
  images: imgs.length,
  broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => (i.src || '').slice(0, 60)),
  errors: document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"], .output_error').length,
  panics: (document.body.innerText.match(/panicked at/g) || []).length,
};
"""


def browser(user_dir):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-quic", f"--user-data-dir={user_dir}", "--window-size=1400,1000"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait(driver, what, predicate, timeout):
    deadline = time.time() + timeout
    state = None
    while time.time() < deadline:
        state = driver.execute_script(STATE_JS)
        if state and predicate(state):
            return state
        time.sleep(1)
    raise Failure(f"timed out after {timeout} s waiting for {what}; last state: {json.dumps(state)[:600]}")


def check_lab(driver, source: Path, shots: Path, timeout: int):
    # A copy beside the original (same relative paths), so that JupyterLab's autosave never writes
    # outputs into the committed notebook; git ignores it and it is removed afterwards.
    notebook = source.with_name(f"zz-browser-test-{source.name}")
    shutil.copyfile(source, notebook)
    try:
        run_in_lab(driver, notebook, shots, timeout)
    finally:
        notebook.unlink(missing_ok=True)
        (notebook.parent / ".ipynb_checkpoints" / f"{notebook.stem}-checkpoint.ipynb").unlink(missing_ok=True)


def run_in_lab(driver, notebook: Path, shots: Path, timeout: int):
    with LabServer(8900, ["--LabApp.expose_app_in_browser=True"], log_name="lab-browser.log") as lab:
        start = time.time()
        # `reset` starts from an empty workspace: a saved one (in the cache folder, shared by every
        # clone) may reopen other notebooks, whose kernels would share the lab's evcxr build folder.
        driver.get(lab.url(f"/lab/tree/{notebook.name}?reset"))
        wait(driver, "the notebook and an idle kernel",
             lambda s: s["path"].endswith(notebook.name) and s["kernel"] == "idle", 180)
        opened = time.time() - start
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
        state = wait(driver, "every cell to run",
                     lambda s: s["kernel"] == "idle" and all(c["count"] is not None for c in s["cells"]), timeout)
        ran = time.time() - start - opened
        shots.mkdir(parents=True, exist_ok=True)
        shot = shots / f"lab-{notebook.stem.removeprefix('zz-browser-test-')}.png"
        driver.save_screenshot(str(shot))
        problems = []
        tagged = [c for c in state["cells"] if "expect-image" in c["tags"]]
        for i, c in enumerate(state["cells"], 1):
            if c["errors"] or "panicked at" in c["stderr"]:
                problems.append(f"code cell {i}: error output {c['stderr'][-200:]!r}")
        for c in tagged:
            good = [p for p in c["pngs"] if p["png"] and p["complete"] and p["width"] > 0]
            if not good:
                problems.append(f"a cell tagged expect-image shows no decoded PNG: {c['pngs']}")
        if problems:
            raise Failure(f"{notebook.name} in JupyterLab: " + "; ".join(problems))
        if not tagged:
            raise Failure(f"{notebook.name}: no cell tagged expect-image found in the page (tags not read?)")
        print(f"ok     JupyterLab in Chromium: {notebook.name} opened in {opened:.1f} s, all "
              f"{len(state['cells'])} code cells ran in {ran:.1f} s, {len(tagged)} figures decoded "
              f"(screenshot {shot})")
    if lab.leftover:
        raise Failure(lab.leftover)


def check_pages(driver, html_dir: Path):
    pages = sorted(html_dir.glob("*.html"))
    if not pages:
        raise Failure(f"no page in {html_dir}: run `make run` first")
    for page in pages:
        driver.get(page.resolve().as_uri())
        deadline = time.time() + 60
        s = driver.execute_script(PAGE_JS)
        while s["ready"] != "complete" and time.time() < deadline:
            time.sleep(0.5)
            s = driver.execute_script(PAGE_JS)
        if s["broken"] or s["errors"] or s["panics"]:
            raise Failure(f"{page}: broken images {s['broken']}, {s['errors']} error outputs, {s['panics']} panics")
        if s["images"] == 0:
            raise Failure(f"{page}: no image at all")
        print(f"ok     {page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}: {s['images']} images decoded, no error output")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notebook", default=str(ROOT / "notebooks" / "01-visualization.ipynb"))
    ap.add_argument("--html", default=str(ROOT / "out" / "html"), help="folder of pages to check ('' to skip)")
    ap.add_argument("--shots", default=str(ROOT / "out" / "browser"))
    ap.add_argument("--timeout", type=int, default=900, help="seconds for the notebook to run")
    a = ap.parse_args()
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            print(f"{exe} is missing: `make test-browser` installs Debian's chromium and chromium-driver", file=sys.stderr)
            return 2
    start = time.time()
    with tempfile.TemporaryDirectory() as user_dir:
        driver = browser(user_dir)
        try:
            check_lab(driver, Path(a.notebook), Path(a.shots), a.timeout)
            if a.html:
                check_pages(driver, Path(a.html))
        except Failure as e:
            print(f"FAILED browser test: {e}")
            return 1
        finally:
            driver.quit()
    print(f"browser tests passed in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
