"""The built book in a real browser: headless Chromium over a local web server.

    python book/browse.py screenshots [--book _build/html] [--out docs/screenshots]

``Reader`` serves a built book on 127.0.0.1 and drives Debian's Chromium through
Selenium and chromedriver. It keeps what a reader's browser saw: the console's
messages and the address of every request (tests/test_book.py checks both).
Chromium and chromedriver are found at /usr/bin (Debian's packages ``chromium`` and
``chromium-driver``) or where CHROME_BIN and CHROMEDRIVER say.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1200, 860)


class BrowserMissing(RuntimeError):
    pass


def _find(env: str, names: list[str]) -> str:
    if os.environ.get(env):
        if not os.access(os.environ[env], os.X_OK):
            raise BrowserMissing(f"${env} is {os.environ[env]!r}, which is not a program "
                                 "this user can run")
        return os.environ[env]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(
        f"no {names[0]} found (looked for {', '.join(names)} on PATH and ${env}): install "
        "Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; "
        ".ci/run does) or set CHROME_BIN and CHROMEDRIVER")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Reader:
    """A local server for ``book`` and a headless Chromium reading it."""

    def __init__(self, book: Path, window: tuple[int, int] = WINDOW):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium = _find("CHROME_BIN", ["chromium", "chromium-browser", "google-chrome"])
        driver = _find("CHROMEDRIVER", ["chromedriver"])
        handler = functools.partial(_QuietHandler, directory=str(book))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={window[0]},{window[1]}", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-extensions", "--lang=en-US",
                    # a page that asked for another host would get no answer (and the
                    # request is still in the log, where the tests look)
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager phones no one
        try:
            self.driver = webdriver.Chrome(service=Service(driver), options=options)
        except Exception:
            self.server.shutdown()
            raise
        self.driver.set_page_load_timeout(60)

    def open(self, page: str, settle: float = 0.0) -> None:
        """Load ``page`` (relative to the book) and wait until MathJax is done, if used."""
        self.driver.get(self.base + page)
        self.settle(settle)

    def settle(self, extra: float = 0.0) -> None:
        """Wait for the page just loaded (or clicked to) to be whole, math typeset."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, 60).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
        self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
            "  MathJax.startup.promise.then(() => done(true), () => done(false));"
            "else done(true);")
        if extra:
            time.sleep(extra)

    def console(self) -> list[dict]:
        """The console's messages since the last call."""
        return self.driver.get_log("browser")

    def requests(self) -> list[str]:
        """The address of every request made since the last call."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# one lesson per language, scrolled to its second section: prose, then a figure
SCREENSHOTS = {"en": "02_sync_vs_async.html", "zh-hans": "zh-hans/02_sync_vs_async.html",
               "zh-hant": "zh-hant/02_sync_vs_async.html"}


def screenshot(reader: Reader, page: str, path: Path) -> None:
    reader.open(page, settle=0.3)
    reader.driver.execute_script(
        "const h = document.querySelectorAll('article section h2')[1];"
        "if (h) h.scrollIntoView({block: 'start'});")
    time.sleep(0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    reader.driver.save_screenshot(str(path))


def shrink(path: Path) -> None:
    """256 colours: a page's screenshot at a third of its size, still sharp."""
    from PIL import Image

    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the built book")
    parser.add_argument("what", choices=["screenshots"])
    parser.add_argument("--book", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    if not (args.book / "index.html").exists():
        print(f"error: no book in {args.book}: run `make book` first", file=sys.stderr)
        return 1
    try:
        with Reader(args.book) as reader:
            for lang, page in SCREENSHOTS.items():
                path = args.out / f"lesson-02-{lang}.png"
                screenshot(reader, page, path)
                shrink(path)
                print(f"{path} ({path.stat().st_size // 1024} KB)")
    except BrowserMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
