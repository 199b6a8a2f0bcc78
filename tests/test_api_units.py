"""The API contract's parts that need no server: the README table, the client's retry rules and inputs."""
from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2fashion.client import Retry, _image_part, parse_retry_after
from sketch2fashion.serving.api_table import END, START, render_table, replace_section
from sketch2fashion.serving.config import load_serving_config
from sketch2fashion.serving.web import make_app

ROOT = Path(__file__).resolve().parents[1]


def s2f(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sketch2fashion.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_readme_api_table_is_the_one_the_schema_renders():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = render_table(make_app(load_serving_config(ROOT)).openapi())
    assert replace_section(readme, table) == readme, "README's API table is stale: s2f api-table --write README.md"
    for path in ("/colorize", "/search", "/colorize_and_search", "/models", "/catalog/images/{product_id}"):
        assert f" {path}` |" in table
    assert "`top_k` 1–100, default 12" in table and "`text` ≤ 500 chars" in table


def test_api_table_command_prints_the_readme_table():
    done = s2f(["api-table"])
    assert done.returncode == 0, done.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{START}\n{done.stdout.strip()}\n{END}" in readme


def test_replace_section_needs_both_markers():
    assert replace_section(f"a\n{START}\nold\n{END}\nb", "new") == f"a\n{START}\nnew\n{END}\nb"
    with pytest.raises(ValueError, match="markers"):
        replace_section("no markers here", "new")


@pytest.mark.parametrize("command", ["colorize", "search", "api-table"])
def test_api_commands_have_help(command):
    done = s2f([command, "--help"])
    assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr


def test_retry_waits_at_least_retry_after_and_backs_off_exponentially():
    retry = Retry(retries=3, backoff=0.5, max_wait=30, jitter=0.0)
    assert [retry.wait(n, None) for n in range(4)] == [0.5, 1.0, 2.0, None]  # None: retries spent
    assert retry.wait(0, 5.0) == 5.0 and retry.wait(2, 1.0) == 2.0  # the longer of the two
    assert retry.wait(0, 31.0) is None  # longer than max_wait: give up now rather than hang
    jittered = Retry(backoff=1.0, jitter=0.1)
    assert all(1.0 <= jittered.wait(0, None) <= 1.1 for _ in range(50))


def test_parse_retry_after_reads_seconds_and_dates():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("-1") is None


def test_image_inputs_become_uploads(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[5:10, 5:10] = (255, 0, 0)
    name, data, media = _image_part(rgb, "sketch")
    assert (name, media) == ("sketch.png", "image/png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), rgb)  # lossless
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG")
    name, _, media = _image_part(jpeg.getvalue(), "image")
    assert (name, media) == ("image.jpg", "image/jpeg")
    path = tmp_path / "drawing.png"
    path.write_bytes(data)
    assert _image_part(path, "sketch") == ("drawing.png", data, "image/png")
    assert _image_part(str(path), "sketch") == ("drawing.png", data, "image/png")
    assert _image_part(Image.fromarray(rgb), "sketch")[2] == "image/png"
    assert _image_part(b"junk", "sketch")[2] == "application/octet-stream"  # the server says what is wrong
    with pytest.raises(TypeError, match="uint8"):
        _image_part(rgb.astype(np.float32), "sketch")
    with pytest.raises(FileNotFoundError):
        _image_part(tmp_path / "missing.png", "sketch")
