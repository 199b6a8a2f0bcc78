"""Acceptance test of the drawing page: Debian's Chromium (Playwright) on a real `bentoml serve`.

The shopper's flow with real input events: pick `top`, draw a t-shirt outline with the mouse
(or a finger on a phone), tap red dots inside it, press "Colorize & search", and see the
generated photo, the model version and product cards linking to shops. Also the page's own
"Draw an outline first", a server error in words, undo/redo (canvas pixels), and the route
that serves the catalog's cached product photos. Screenshots go to reports/page/ (the issue's
evidence) and to pytest's tmp dir.
"""
from __future__ import annotations

import http.client
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from waiting import HANG_SECONDS
from serving_fixtures import BentoServer, make_project, scrape, sketch_png

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "page"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
CANVAS = 512  # the page's canvas size in pixels
RED = (224, 36, 36)  # the palette's "Red" (#e02424)
pytestmark = pytest.mark.slow

# A t-shirt outline and two dots inside it, on a 0..1 square of the canvas.
T_SHIRT = [(0.38, 0.17), (0.5, 0.24), (0.62, 0.17), (0.8, 0.24), (0.93, 0.4), (0.82, 0.47), (0.74, 0.39),
           (0.74, 0.85), (0.26, 0.85), (0.26, 0.39), (0.18, 0.47), (0.07, 0.4), (0.2, 0.24), (0.38, 0.17)]
RED_DOTS = [(0.5, 0.55), (0.4, 0.7)]
STRAY = [(0.05, 0.95), (0.3, 0.95)]  # a stroke below the shirt, for undo/redo


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH or at /usr/bin/chromium (Debian: apt-get install chromium); "
                    "the page test needs a real browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the page test needs the playwright package")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    project = make_project(root / "project")
    with BentoServer(project, root / "bentoml-serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def training_server(tmp_path_factory):
    """A project whose pants colorizer is still training (no champion, a progress file)."""
    root = tmp_path_factory.mktemp("page-training")
    project = make_project(root / "project", training=("pants",))
    with BentoServer(project, root / "bentoml-serve.log", ready_path="/livez") as running:
        yield running


@pytest.fixture(scope="module")
def unindexed_server(tmp_path_factory):
    """A project whose catalog has no search index yet, as while `make demo`'s second wave runs."""
    root = tmp_path_factory.mktemp("page-unindexed")
    project = make_project(root / "project", catalog=False)
    with BentoServer(project, root / "bentoml-serve.log", ready_path="/livez") as running:
        yield running


# --- helpers ---------------------------------------------------------------------------------------

def canvas_point(box: dict, point: tuple[float, float]) -> tuple[float, float]:
    return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]


def mouse_stroke(page, points) -> None:
    """A pen stroke through `points` with real mouse pointer events."""
    box = page.locator("#sketch").bounding_box()
    page.mouse.move(*canvas_point(box, points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*canvas_point(box, point), steps=6)
    page.mouse.up()


def mouse_tap(page, point) -> None:
    box = page.locator("#sketch").bounding_box()
    page.mouse.move(*canvas_point(box, point))
    page.mouse.down()
    page.mouse.up()


def touch_stroke(page, cdp, points) -> None:
    """A finger stroke through `points`: real touch input (pointerType "touch") via CDP."""
    box = page.locator("#sketch").bounding_box()
    x, y = canvas_point(box, points[0])
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for a, b in zip(points, points[1:]):
        for i in range(1, 7):
            t = i / 6
            x, y = canvas_point(box, (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    # The finger is up once the page has the pointerup. Then a human pause: Chromium's gesture
    # detector drops the click of a tap that comes within a few ms of a long touch sequence.
    page.wait_for_function("() => !document.getElementById('sketch').dataset.drawing", timeout=20_000)
    page.wait_for_timeout(300)


def pixel(page, point) -> tuple[int, int, int]:
    x, y = round(point[0] * CANVAS), round(point[1] * CANVAS)
    return tuple(page.evaluate(
        """([x, y]) => Array.from(document.getElementById('sketch').getContext('2d')
                         .getImageData(x, y, 1, 1).data.slice(0, 3))""", [x, y]))


def canvas_census(page) -> dict:
    """Pixels the server will read as ink (dark grey) and as hints (chroma >= 48), and the red ones."""
    return page.evaluate("""() => {
        const c = document.getElementById('sketch');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let ink = 0, hints = 0, red = 0, grey = 0;
        for (let i = 0; i < d.length; i += 4) {
            const r = d[i], g = d[i + 1], b = d[i + 2];
            const chroma = Math.max(r, g, b) - Math.min(r, g, b);
            if (chroma >= 48) { hints++; if (r === 224 && g === 36 && b === 36) red++; }
            else if (0.299 * r + 0.587 * g + 0.114 * b < 160) ink++;
            if (chroma < 48 && r !== 0 && r !== 255) grey++;
        }
        return {ink, hints, red, grey};
    }""")


def wait_for_champion(page, category: str, label: str) -> None:
    """Wait until the page lists `category` with its plain label: its champion is loaded (a server
    that is only live may still be loading it; the page asks /models again until it is)."""
    page.wait_for_function("""([category, label]) => {
        const option = document.querySelector(`#category option[value="${category}"]`);
        return option && option.textContent === label; }""", arg=[category, label], timeout=HANG_SECONDS * 1000)


def wait_for_result(page, timeout_ms: int = 30_000) -> float:
    """Seconds until the generated photo (a data: JPEG, as the page asks for) is shown and decoded."""
    started = time.perf_counter()
    page.wait_for_function("""() => { const img = document.getElementById('photo');
        return !img.hidden && img.src.startsWith('data:image/jpeg;base64,') && img.complete && img.naturalWidth > 0; }""",
                           timeout=timeout_ms)
    return time.perf_counter() - started


def check_products(page) -> None:
    links = page.locator(".card a[href]")
    assert links.count() >= 1
    first = links.first
    assert first.get_attribute("target") == "_blank"
    assert "noopener" in first.get_attribute("rel").split()
    assert first.get_attribute("href").startswith("https://shop.example/")
    # The demo feed's image_link is a local path: the card shows it through /catalog/images/{id}.
    assert "/catalog/images/" in first.locator("img").evaluate("img => img.src")
    page.wait_for_function("""() => { const img = document.querySelector('.card img');
        return img && img.complete && img.naturalWidth > 0; }""", timeout=15_000)
    assert page.locator(".card .price").first.inner_text().strip()[:1] in "$US"


def screenshot(page, name: str, tmp_path: Path) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(full_page=True)
    (REPORTS / name).write_bytes(data)
    (tmp_path / name).write_bytes(data)


def open_page(browser, server, **context_args):
    context = browser.new_context(**context_args)
    page = context.new_page()
    page.goto(server.url, wait_until="domcontentloaded")
    page.wait_for_selector('#category option[value="top"]', state="attached", timeout=15_000)
    return context, page


# --- the photo route -------------------------------------------------------------------------------

def test_catalog_image_route_serves_only_catalog_photos(server):
    response = httpx.post(f"{server.url}/colorize_and_search", files={"sketch": ("s.png", sketch_png(), "image/png")},
                          data={"category": "top", "top_k": "2"}, timeout=60)
    assert response.status_code == 200, response.text
    product = response.json()["products"][0]
    # The demo feed links local files: the card names the route of the cached copy, never a server path.
    assert product["image_link"] == f"/catalog/images/{quote(product['id'], safe='')}"

    photo = httpx.get(f"{server.url}{product['image_link']}", timeout=30)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    assert photo.content.startswith(b"\x89PNG\r\n\x1a\n")

    unknown = httpx.get(f"{server.url}/catalog/images/no-such-product", timeout=30)
    assert unknown.status_code == 404 and "no product" in unknown.json()["error"]
    for path in ("..%2F..%2Fparams.yaml", "%2E%2E%2F%2E%2E%2Fparams.yaml", "%2Fetc%2Fpasswd",
                 f"{quote(product['id'], safe='')}%2F..%2F..%2Fparams.yaml"):
        answer = httpx.get(f"{server.url}/catalog/images/{path}", timeout=30)
        assert answer.status_code == 404 and "error" in answer.json(), path
    # Dot segments sent as they are (httpx would normalise them away).
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/catalog/images/../../../params.yaml")
        raw = connection.getresponse()
        body = raw.read()
    finally:
        connection.close()
    assert raw.status == 404 and b"serving:" not in body
    # Photo fetches stay out of the API's request counts (a page loads a dozen per search).
    counted = {labels["endpoint"] for labels, _ in scrape(server.url).get("s2f_requests_total", [])}
    assert "catalog_image" not in counted and "colorize_and_search" in counted


# --- the page --------------------------------------------------------------------------------------

def test_draw_colorize_and_shop_on_desktop(browser, server, tmp_path):
    context, page = open_page(browser, server, viewport={"width": 1280, "height": 900})
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "colorize_and_search" in request.url else None)
    try:
        # Empty canvas: the page says so itself, without calling the server.
        page.click("#go")
        assert "Draw an outline first" in page.locator("#error").inner_text()
        assert asked == []

        page.select_option("#category", "top")
        mouse_stroke(page, T_SHIRT)
        drawn = canvas_census(page)
        assert drawn["ink"] > 500 and drawn["hints"] == 0 and drawn["grey"] == 0  # crisp black on white

        # Undo removes the last stroke, redo brings it back (keyboard and buttons).
        mouse_stroke(page, STRAY)
        assert pixel(page, (0.2, 0.95)) == (0, 0, 0)
        page.keyboard.press("Control+z")
        assert pixel(page, (0.2, 0.95)) == (255, 255, 255)
        assert canvas_census(page)["ink"] == drawn["ink"]  # the outline stays
        page.keyboard.press("Control+Shift+z")
        assert pixel(page, (0.2, 0.95)) == (0, 0, 0)
        page.click("#undo")
        assert pixel(page, (0.2, 0.95)) == (255, 255, 255)
        page.keyboard.press("Control+y")
        page.keyboard.press("Control+z")
        assert canvas_census(page)["ink"] == drawn["ink"]

        # Red dots: picking a colour switches to the dot tool; dots are exact, unblurred red.
        page.get_by_role("button", name="Red", exact=True).click()
        assert page.locator('button.tool[data-tool="dot"]').get_attribute("aria-pressed") == "true"
        for dot in RED_DOTS:
            mouse_tap(page, dot)
        assert pixel(page, RED_DOTS[0]) == RED
        census = canvas_census(page)
        assert census["red"] == census["hints"] > 100

        page.fill("#text", "red t-shirt")
        page.click("#go")
        seconds = wait_for_result(page)
        assert page.locator("#error").is_hidden()
        assert "model version 1" in page.locator("#model-version").inner_text()
        assert len(asked) == 1
        check_products(page)
        # Reported, not asserted: speed targets live in bench/, a loaded CI machine must not fail this.
        print(f"desktop: photo shown {seconds:.2f}s after pressing Colorize & search")
        screenshot(page, "desktop.png", tmp_path)

        # A server error is shown in words: `auto` needs the classifier this project lacks.
        page.select_option("#category", "auto")
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])")
        assert "classifier" in page.locator("#error").inner_text()
    finally:
        context.close()


def test_a_category_still_training_says_so_and_an_open_outline_is_ringed(browser, training_server, tmp_path):
    context, page = open_page(browser, training_server, viewport={"width": 1280, "height": 900})
    try:
        pants = page.locator('#category option[value="pants"]')
        # The server is only live (no pants champion): its first /models may fail while the top champion
        # loads and compiles on a slow CPU; the page asks again, so wait on the options, generously.
        page.wait_for_function("""() => document.querySelector('#category option[value="top"]')
                                  && document.querySelector('#category option[value="pants"]')""",
                               timeout=HANG_SECONDS * 1000)
        assert "still training: epoch 2 of 4" in pants.inner_text()
        wait_for_champion(page, "top", "Top")
        page.select_option("#category", "pants")
        mouse_stroke(page, T_SHIRT)
        page.get_by_role("button", name="Red", exact=True).click()
        mouse_tap(page, RED_DOTS[0])
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])")
        assert "still training (epoch 2 of 4)" in page.locator("#error").inner_text()
        ready = httpx.get(f"{training_server.url}/readyz", timeout=30)  # what an orchestrator's probe reads
        assert ready.status_code == 503 and "pants" in ready.text and "top" not in ready.text, ready.text

        # The t-shirt without its hem, which is too wide an opening to close: the colour would run
        # out there, so the page rings the two open stroke ends and asks for the line.
        page.click("#clear")
        page.select_option("#category", "top")
        page.click('button.tool[data-tool="pen"]')
        mouse_stroke(page, T_SHIRT[T_SHIRT.index((0.26, 0.85)):] + T_SHIRT[1:T_SHIRT.index((0.74, 0.85)) + 1])
        page.get_by_role("button", name="Red", exact=True).click()
        mouse_tap(page, RED_DOTS[0])
        page.click("#go")
        wait_for_result(page)
        page.wait_for_selector("#gap-warning:not([hidden])")
        assert "outline is open" in page.locator("#gap-warning").inner_text()
        rings = page.locator("#gap-marks circle")
        assert rings.count() == 2
        ys = sorted(float(rings.nth(i).get_attribute("cy")) for i in range(2))
        assert all(abs(y - 0.85) < 0.05 for y in ys)  # at the hem's two ends
        screenshot(page, "open-outline-tiny.png", tmp_path)
        mouse_stroke(page, [(0.26, 0.85), (0.74, 0.85)])  # the shopper closes it: the rings go
        assert page.locator("#gap-marks circle").count() == 0 and page.locator("#gap-warning").is_hidden()
    finally:
        context.close()


def test_without_a_search_index_the_page_still_draws_the_garment_and_says_why(browser, unindexed_server):
    context, page = open_page(browser, unindexed_server, viewport={"width": 1280, "height": 900})
    try:
        wait_for_champion(page, "top", "Top")
        page.select_option("#category", "top")
        mouse_stroke(page, T_SHIRT)
        page.get_by_role("button", name="Red", exact=True).click()
        mouse_tap(page, RED_DOTS[0])
        page.click("#go")
        wait_for_result(page, timeout_ms=HANG_SECONDS * 1000)
        assert page.locator("#error").is_hidden()
        assert "top colorizer, model version 1" in page.locator("#model-version").inner_text().lower()
        assert page.locator(".card").count() == 0
        assert "no published search index yet" in page.locator("#products-empty").inner_text()
    finally:
        context.close()


def test_phone_width_touch_flow(browser, server, tmp_path):
    context, page = open_page(browser, server, viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True, device_scale_factor=1)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        controls = ["#sketch", 'button.tool[data-tool="pen"]', 'button.tool[data-tool="eraser"]', "#pen-width",
                    "#undo", "#redo", "#clear", 'button[aria-label="Red"]', "#custom-colour", "#category",
                    "#text", "#live", "#go", ".upload", ".example"]
        for selector in controls:
            control = page.locator(selector).first
            assert control.is_visible(), selector
            box = control.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)

        page.select_option("#category", "top")
        cdp = context.new_cdp_session(page)
        page.locator("#sketch").scroll_into_view_if_needed()
        touch_stroke(page, cdp, T_SHIRT)
        assert canvas_census(page)["ink"] > 300
        page.locator('button[aria-label="Red"]').tap()
        page.wait_for_selector('button.tool[data-tool="dot"][aria-pressed="true"]', timeout=20_000)
        page.locator("#sketch").scroll_into_view_if_needed()
        touch_stroke(page, cdp, [RED_DOTS[0]])
        assert pixel(page, RED_DOTS[0]) == RED

        page.locator("#go").tap()
        seconds = wait_for_result(page)
        assert "model version 1" in page.locator("#model-version").inner_text()
        check_products(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        print(f"phone: photo shown {seconds:.2f}s after tapping Colorize & search")
        screenshot(page, "phone.png", tmp_path)
    finally:
        context.close()
