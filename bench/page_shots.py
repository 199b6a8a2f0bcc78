"""Screenshots of the drawing page on a running service (the real champions, not test models).

Drives Debian's Chromium with Playwright, as a shopper would, on a service started by
`make demo` or `make serve`: the t-shirt example with red dots, a quick one-stroke outline of
trousers (hem left open, as people draw them), the same outline opened too wide (the page rings
where it must be closed), and a hat. Writes reports/page/demo-*.png.

  python -m bench.page_shots --url http://127.0.0.1:3000
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

OUT = Path("reports/page")
T_SHIRT = [(0.38, 0.17), (0.5, 0.24), (0.62, 0.17), (0.8, 0.24), (0.93, 0.4), (0.82, 0.47), (0.74, 0.39),
           (0.74, 0.85), (0.26, 0.85), (0.26, 0.39), (0.18, 0.47), (0.07, 0.4), (0.2, 0.24), (0.38, 0.17)]
# Trousers as one quick stroke, both hems left open (ends at the bottom of each leg).
TROUSERS = [(0.31, 0.86), (0.34, 0.2), (0.66, 0.19), (0.7, 0.86), (0.55, 0.86), (0.5, 0.42), (0.45, 0.86)]
WIDE_OPEN = [(0.2, 0.9), (0.25, 0.2), (0.75, 0.2), (0.8, 0.9)]  # a skirt with no hem at all
HAT = ([(0.12 + 0.76 * i / 20, 0.66 + 0.02 * math.sin(math.pi * i / 20)) for i in range(21)]
       + [(0.74, 0.62), (0.66, 0.6), (0.64, 0.3), (0.5, 0.27), (0.36, 0.3), (0.34, 0.6), (0.26, 0.62),
          (0.12, 0.66)])


def stroke(page, points) -> None:
    box = page.locator("#sketch").bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
    page.mouse.up()


def dots(page, colour: str, points) -> None:
    page.get_by_role("button", name=colour, exact=True).click()
    for point in points:
        stroke(page, [point])
    page.click('button.tool[data-tool="pen"]')


def colorize(page, category: str) -> None:
    page.select_option("#category", category)
    before = page.eval_on_selector("#photo", "img => img.src")  # the previous drawing's photo, if any
    page.click("#go")
    page.wait_for_function("""(before) => { const img = document.getElementById('photo');
        return !img.hidden && img.src !== before && img.complete && img.naturalWidth > 0
               && document.getElementById('status').hidden; }""", arg=before, timeout=120_000)


def shoot(page, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"demo-{name}.png"
    path.write_bytes(page.screenshot(full_page=True))
    return path


def run(url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector('#category option[value="top"]', state="attached", timeout=30_000)
        for name, outline, colour, spots, category in (
                ("t-shirt", T_SHIRT, "Red", [(0.5, 0.55), (0.4, 0.7), (0.6, 0.4)], "top"),
                ("quick-trousers", TROUSERS, "Navy", [(0.4, 0.4), (0.6, 0.5), (0.38, 0.7)], "pants"),
                ("open-outline", WIDE_OPEN, "Green", [(0.5, 0.5), (0.4, 0.7), (0.6, 0.7)], "skirt"),
                ("hat", HAT, "Yellow", [(0.5, 0.45), (0.42, 0.55), (0.3, 0.64)], "auto")):
            if page.locator("#clear").is_enabled():
                page.click("#clear")
            stroke(page, outline)
            dots(page, colour, spots)
            colorize(page, category)
            shots.append(shoot(page, name))
        browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    args = parser.parse_args(argv)
    for path in run(args.url):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
