"""The map page in a real browser: its size and the time to draw its overlay, from disk.

    python bench/page_bench.py MAP_DIR [MAP_DIR ...] [--runs 5]

MAP_DIR is a map folder predict.py wrote (index.html, overlay.png, lib/). Debian's chromium
(/usr/bin/chromium) through Playwright, as tests/maps/test_page.py drives it; each run opens the
page in a new tab and times from navigation to every image drawn. Prints the median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import machine  # noqa: E402  (bench/machine.py: a script's folder is on sys.path)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARGS += ["--disable-component-update", "--no-first-run"]


def page_bytes(folder: Path) -> int:
    files = [folder / "index.html", folder / "overlay.png", *(folder / "lib").rglob("*")]
    return sum(f.stat().st_size for f in files if f.is_file())


def load_seconds(browser, page_path: Path) -> float:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    started = time.perf_counter()
    page.goto(page_path.as_uri(), wait_until="load")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("maps", nargs="+", help="map folders written by predict.py")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(machine.describe())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for folder in map(Path, args.maps):
            times = [load_seconds(browser, (folder / "index.html").resolve()) for _ in range(args.runs)]
            print(
                f"{folder}: page {page_bytes(folder) / 1e6:.2f} MB; overlay drawn after "
                f"{statistics.median(times):.2f} s (median of {args.runs}: {', '.join(f'{t:.2f}' for t in times)})"
            )
        browser.close()


if __name__ == "__main__":
    main()
