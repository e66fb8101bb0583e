"""A reader's check in a real browser: screenshots of a notebook open in JupyterLab and of the
HTML book (make book), with what the page shows summarised on the terminal.

Starts JupyterLab from this environment, headless, on localhost (no token; root: the
repository; autosave off, so opening a notebook never rewrites it; news off), drives a headless
Chromium through its DevTools protocol (websocket-client, which jupyter_server already
installs) and writes PNGs to docs/screenshots/:

    jupyterlab_notebook01.png          notebooks/01_data_prep.ipynb, once JupyterLab rendered it
                                       and its kernel is idle
    jupyterlab_notebook01_figure.png   the same, scrolled to its first figure
    book_index.png, book_page.png      book/index.html and book/quick/01_data_prep.html (the
                                       book is built first when missing)

For each page it prints the cells, the figures that loaded, stderr outputs, errors and the
browser console's errors. Chromium is not a Python package: install it with the system's package
manager (Debian: apt-get install chromium) or point ONERANKER_BROWSER at a Chromium or Chrome
binary; without one the script says so and exits 0.

    python scripts/screenshot.py [--out docs/screenshots] [--port 8899]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
NOTEBOOK = "notebooks/01_data_prep.ipynb"
BOOK_PAGE = "quick/01_data_prep.html"


def find_browser() -> str | None:
    if env := os.environ.get("ONERANKER_BROWSER"):
        return env if Path(env).is_file() else shutil.which(env)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(0.5)


class Browser:
    """Headless Chromium driven over the DevTools protocol: one tab."""

    def __init__(self, exe: str, width: int = 1400, height: int = 900):
        import websocket   # websocket-client, a dependency of jupyter_server

        self.profile = tempfile.mkdtemp(prefix="oneranker-chromium-")
        port = _free_port()
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--no-default-browser-check", f"--remote-debugging-port={port}", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets = json.loads(_wait_http(f"http://127.0.0.1:{port}/json/list", 60, self.proc))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self.calls = 0
        self.console_errors: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self.calls += 1
        self.ws.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.calls:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.console_errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.console_errors.append(f"{p['entry'].get('url', '')}: {p['entry']['text']}")

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(expression):
                return True
            time.sleep(0.5)
        return False

    def goto(self, url: str, ready: str = "document.readyState === 'complete'", timeout: float = 60) -> bool:
        self.call("Page.navigate", url=url)
        self.console_errors.clear()     # the page left behind may still have spoken during the call
        return self.wait_for(ready, timeout)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def start_jupyterlab(port: int, settings: Path) -> subprocess.Popen:
    """JupyterLab of this environment, headless on localhost, with its own settings, workspace and
    checkpoint folders (under ``settings``): autosave and news off, so that opening a notebook
    neither rewrites it nor leaves a checkpoint beside it."""
    for plugin, values in {"@jupyterlab/docmanager-extension/plugin": {"autosave": False},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}.items():
        f = settings / "user-settings" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    log = settings / "jupyterlab.log"
    root_ok = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
             "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", f"--ServerApp.root_dir={ROOT}",
             f"--LabApp.user_settings_dir={settings / 'user-settings'}",
             f"--LabApp.workspaces_dir={settings / 'workspaces'}",
             f"--FileCheckpoints.checkpoint_dir={settings / 'checkpoints'}", *root_ok],
            stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status", 120, proc)
    except (RuntimeError, TimeoutError):
        print("JupyterLab did not start; the end of its log:\n" + "\n".join(log.read_text().splitlines()[-15:]))
        raise
    return proc


NOTEBOOK_REPORT = """(() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const imgs = [...panel.querySelectorAll('.jp-OutputArea-output img')];
  const stderr = [...panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')];
  return {
    cells: panel.querySelectorAll('.jp-Cell').length,
    figures: imgs.length, figures_loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    stderr: stderr.map(e => e.innerText.trim().slice(0, 160)),
    tracebacks: [...panel.querySelectorAll('.jp-OutputArea-output')].filter(e => e.innerText.includes('Traceback (most recent call last)')).length,
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.trim().slice(0, 160)),
    kernel: (panel.querySelector('.jp-Toolbar-kernelName') || {innerText: '?'}).innerText + ', '
            + (panel.querySelector('.jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status,
    marked_modified_on_opening: [...document.querySelectorAll('.lm-TabBar-tab.jp-mod-dirty')].map(t => t.innerText.trim()),
    title: (panel.querySelector('.jp-MarkdownOutput h1') || {innerText: ''}).innerText,
  };
})()"""

BOOK_REPORT = """(() => {
  const imgs = [...document.querySelectorAll('img')];
  return {title: document.title, links: document.querySelectorAll('a[href$=".html"]').length,
          figures: imgs.length, figures_loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
          tracebacks: document.body.innerText.includes('Traceback (most recent call last)')};
})()"""

FIGURE = ".jp-OutputArea-output img"
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
SCROLL_TO = """(() => {
  const e = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) %s') || document.querySelector('%s');
  if (!e) return false;
  e.scrollIntoView({block: 'center'});
  return true;
})()"""


def _say(name: str, path: Path, report, errors: list[str]) -> None:
    print(f"{name}: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    for key, value in (report or {}).items():
        print(f"    {key}: {value}")
    print(f"    browser console errors: {len(errors)}")
    for e in errors[:10]:
        print(f"      {e[:200]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--port", type=int, default=8899, help="JupyterLab's port on localhost")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for the notebook to render")
    args = ap.parse_args()
    out = args.out.resolve()

    exe = find_browser()
    if exe is None:
        print("skipped: no Chromium or Chrome found (looked for " + ", ".join(BROWSERS) + " on PATH and "
              "ONERANKER_BROWSER). Install one with the system's package manager (Debian: apt-get install "
              "chromium); pip's playwright/pyppeteer download their browsers from the internet instead.")
        return 0

    if not (ROOT / "book" / "index.html").exists():
        sys.path.insert(0, str(ROOT / "scripts"))
        import book
        book.build()

    tmp = Path(tempfile.mkdtemp(prefix="oneranker-screenshot-"))
    lab = browser = None
    try:
        lab = start_jupyterlab(args.port, tmp)
        browser = Browser(exe)

        url = f"http://127.0.0.1:{args.port}/lab/tree/{NOTEBOOK}"
        rendered = browser.goto(url, "(() => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
                                     " return !!p && p.querySelectorAll('.jp-OutputArea-output img').length > 0 &&"
                                     " [...p.querySelectorAll('.jp-OutputArea-output img')].every(i => i.complete); })()",
                                args.timeout)
        idle = browser.wait_for("(document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')"
                                " || {dataset: {}}).dataset.status === 'idle'", 60)
        time.sleep(2)   # fonts, the last layout pass
        shot = browser.screenshot(out / "jupyterlab_notebook01.png")
        _say(f"JupyterLab {url} (rendered: {rendered}, kernel idle: {idle})", shot,
             browser.eval(NOTEBOOK_REPORT), browser.console_errors)
        for what, selector in (("figure", FIGURE), ("stderr", STDERR)):
            if browser.eval(SCROLL_TO % (selector, selector)):
                time.sleep(1)
                print(f"    scrolled to the first {what} output: "
                      f"{browser.screenshot(out / f'jupyterlab_notebook01_{what}.png').name}")

        for name, page, png in (("book index", "index.html", "book_index.png"), ("book page", BOOK_PAGE, "book_page.png")):
            browser.goto((ROOT / "book" / page).as_uri())
            time.sleep(1)
            _say(name, browser.screenshot(out / png), browser.eval(BOOK_REPORT), browser.console_errors)
        if browser.eval(SCROLL_TO % (FIGURE, FIGURE)):
            time.sleep(1)
            print(f"    scrolled to the first figure: {browser.screenshot(out / 'book_page_figure.png').name}")
    finally:
        if browser is not None:
            browser.close()
        if lab is not None:
            lab.terminate()
            try:
                lab.wait(30)
            except subprocess.TimeoutExpired:
                lab.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
