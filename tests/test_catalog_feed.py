"""Catalog feed ingest: feed parsing, safe image fetching, and the idempotent SQLite store.

URL cases run against a real HTTP server on 127.0.0.1 (no mocks); that is why most of them pass
allow_private=True, and why the default refusal of 127.0.0.1 is itself a test.
"""
from __future__ import annotations

import csv
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from sketch2fashion.catalog.feed import FeedError, read_feed
from sketch2fashion.catalog.fetch import FetchError, fetch_image, is_public_address, make_client
from sketch2fashion.catalog.store import CatalogStore, IngestSettings, ingest_feed
from sketch2fashion.demo import make_demo_dataset
from sketch2fashion.imaging.io import encode_png
from waiting import wait_until

MB = 1024 * 1024
COLUMNS = ["id", "title", "description", "link", "image_link", "price", "currency", "brand",
           "product_type", "color", "pattern"]


# -- helpers --------------------------------------------------------------------------------------

def png_bytes(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny file whose header claims 10 gigapixels: must be refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def row(pid: str, image_link: str, **fields: str) -> dict[str, str]:
    base = {"id": pid, "title": f"Product {pid}", "description": "", "brand": "Acme",
            "link": f"https://shop.example/p/{pid}", "image_link": image_link, "price": "24.99",
            "currency": "USD", "product_type": "top", "color": "red", "pattern": "solid"}
    return base | fields


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS,
              delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter=delimiter, lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


class _Handler(SimpleHTTPRequestHandler):
    """Serves the tmp folder, plus /endless.png: an image body with no length that never ends."""

    sent: list[int]

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path.startswith("/go/"):  # /go/x.png redirects to /x.png
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/go"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/endless.png":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")
        self.end_headers()
        block = b"\0" * 65536
        try:
            for _ in range(50 * MB // len(block)):
                self.wfile.write(block)
                self.sent[0] += len(block)
        except OSError:
            pass  # the client hung up, which is the point
        finally:
            self.sent[1] += 1  # one more /endless.png answer finished

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop reading a 50 MB body are expected here


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path, list[int]]]:
    """(base URL, served folder, [bytes sent by /endless.png, /endless.png answers finished])."""
    root = tmp_path / "www"
    root.mkdir()
    sent = [0, 0]
    handler = type("Handler", (_Handler,), {"sent": sent})
    httpd = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, sent
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def client() -> Iterator:
    with make_client() as http:
        yield http


# -- feed -----------------------------------------------------------------------------------------

def test_missing_required_columns_is_one_clear_error(tmp_path: Path) -> None:
    feed = write_csv(tmp_path / "shop.csv", [{"id": "a", "title": "A"}], columns=["id", "title"])
    with pytest.raises(FeedError) as info:
        read_feed(feed)
    message = str(info.value)
    assert "shop.csv" in message
    assert "missing required column(s): link, image_link" in message
    assert "id, title, link, image_link" in message


def test_bad_rows_are_reported_and_skipped_the_rest_kept(tmp_path: Path) -> None:
    rows = [
        row("a", "a.png", price="24.99 USD", currency=""),
        row("a", "other.png"),
        row("", "x.png"),
        row("b", "b.png", price="ask us"),
        row("c", "c.png", link="ftp://shop.example/c"),
        row("d", "d.png", price="", currency=""),
    ]
    parse = read_feed(write_csv(tmp_path / "feed.csv", rows))
    assert [p.id for p in parse.products] == ["a", "d"]
    first = parse.products[0]
    assert (first.image_link, first.price, first.currency) == ("a.png", Decimal("24.99"), "USD")
    assert first.category == "top" and first.extra == {"pattern": "solid"}
    assert parse.products[1].price is None
    reasons = {(p.line, p.id): p.reason for p in parse.problems}
    assert reasons[(3, "a")].startswith("duplicate id (first on line 2)")
    assert reasons[(4, "")] == "empty id"
    assert "unparseable price" in reasons[(5, "b")]
    assert "not an http(s) URL" in reasons[(6, "c")]


def test_tsv_and_jsonl_read_like_csv_with_aliases(tmp_path: Path) -> None:
    rows = [row("a", "a.png"), row("b", "b.png", price="9.50 EUR", currency="")]
    from_csv = read_feed(write_csv(tmp_path / "feed.csv", rows)).products
    # TSV with spelled-out headers and the 'category' / 'colour' names.
    tsv_columns = ["ID", "Title", "Description", "Link", "Image Link", "Price", "Currency", "Brand",
                   "category", "colour", "pattern"]
    tsv_rows = [dict(zip(tsv_columns, (r[c] for c in COLUMNS))) for r in rows]
    from_tsv = read_feed(write_csv(tmp_path / "feed.tsv", tsv_rows, tsv_columns, "\t")).products
    jsonl = tmp_path / "feed.jsonl"
    lines = [json.dumps(r | {"price": 24.99}) for r in rows[:1]]
    lines.append(json.dumps(rows[1] | {"price": {"value": "9.50", "currency": "EUR"}}))
    jsonl.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    from_jsonl = read_feed(jsonl).products
    assert from_csv == from_tsv == from_jsonl
    assert from_csv[1].currency == "EUR" and from_csv[0].color == "red"


# -- fetch ----------------------------------------------------------------------------------------

def test_local_images_and_missing_file(tmp_path: Path, client) -> None:
    data = png_bytes(0)
    (tmp_path / "a.png").write_bytes(data)
    assert fetch_image("a.png", base_dir=tmp_path, client=client) == data
    with pytest.raises(FetchError, match="file URL refused"):  # file:// only when the operator allows it
        fetch_image((tmp_path / "a.png").as_uri(), base_dir="/", client=client)
    assert fetch_image((tmp_path / "a.png").as_uri(), base_dir="/", client=client, allow_file_urls=True) == data
    with pytest.raises(FetchError, match="not found"):
        fetch_image("missing.png", base_dir=tmp_path, client=client)


def test_private_addresses_refused_unless_allowed(server, client) -> None:
    base, root, _ = server
    data = png_bytes(1)
    (root / "a.png").write_bytes(data)
    url = f"{base}/a.png"
    with pytest.raises(FetchError, match="private address"):
        fetch_image(url, base_dir=root, client=client)
    port = base.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match="private address"):  # the name is resolved and checked
        fetch_image(f"http://localhost:{port}/a.png", base_dir=root, client=client)
    assert fetch_image(url, base_dir=root, client=client, allow_private=True) == data
    assert fetch_image(f"http://localhost:{port}/go/a.png", base_dir=root, client=client,
                       allow_private=True) == data
    import ipaddress
    for blocked in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1",
                    "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1", "fc00::1"):
        assert not is_public_address(ipaddress.ip_address(blocked)), blocked
    assert is_public_address(ipaddress.ip_address("93.184.216.34"))


def test_http_errors_type_and_size_caps(server, client) -> None:
    base, root, sent = server
    (root / "page.txt").write_bytes(png_bytes(2))
    with open(root / "huge.png", "wb") as fh:  # 50 MB, sparse on disk
        fh.truncate(50 * MB)
    fetch = partial(fetch_image, base_dir=root, client=client, allow_private=True)
    with pytest.raises(FetchError, match="http error.*404"):
        fetch(f"{base}/nope.png")
    with pytest.raises(FetchError, match="not an image content-type"):
        fetch(f"{base}/page.txt")
    with pytest.raises(FetchError, match="too large"):
        fetch(f"{base}/huge.png")
    with pytest.raises(FetchError, match="too large"):
        fetch(f"{base}/endless.png", max_bytes=1 * MB)
    wait_until(lambda: sent[1] == 1, "the server to notice the hang-up")
    assert sent[0] < 20 * MB  # stopped long before the 50 MB it would have sent


# -- store / ingest -------------------------------------------------------------------------------

def test_demo_feed_ingests_fully_and_reingest_changes_nothing(tmp_path: Path) -> None:
    feed = make_demo_dataset(tmp_path / "demo", categories=["top", "hat"], per_category=3, seed=0,
                             size=128)
    store = CatalogStore(tmp_path / "catalog" / "catalog.sqlite")
    first = ingest_feed(feed, store, jobs=2)
    assert (len(first.added), first.skipped, store.version, len(store)) == (6, [], 1, 6)
    hat = store.get("demo-hat-0001")
    assert hat is not None and hat.category == "hat" and hat.currency == "USD"
    assert hat.image_path == tmp_path / "catalog" / "images" / "demo-hat-0001.png"
    assert hat.image_path.is_file() and (hat.image_width, hat.image_height) == (128, 128)
    assert [p.id for p in store.products("top")] == [f"demo-top-000{i}" for i in range(3)]
    stamp = hat.image_path.stat().st_mtime_ns

    again = ingest_feed(feed, store)
    assert (again.added, again.updated, again.deleted, again.skipped) == ([], [], [], [])
    assert len(again.unchanged) == 6 and store.version == 1
    assert hat.image_path.stat().st_mtime_ns == stamp
    store.close()
    with CatalogStore(tmp_path / "catalog" / "catalog.sqlite") as reopened:
        assert len(reopened) == 6 and reopened.version == 1


def test_changes_updates_deletions_and_failed_images(tmp_path: Path, server) -> None:
    base, root, _ = server
    for name, seed in (("a.png", 1), ("b.png", 2), ("c.png", 3)):
        (tmp_path / name).write_bytes(png_bytes(seed))
    (root / "d.png").write_bytes(png_bytes(4))
    feed = tmp_path / "feed.csv"
    rows = [row("a", "a.png"), row("b", "b.png"), row("c", "c.png"), row("d", f"{base}/d.png")]
    write_csv(feed, rows)
    store = CatalogStore(tmp_path / "store" / "catalog.sqlite")
    settings = IngestSettings(allow_private=True, jobs=2)
    assert sorted(ingest_feed(feed, store, settings=settings).added) == ["a", "b", "c", "d"]
    old_b = store.get("b")

    # a: title edited; d: photo replaced; c: removed; b: its photo is now missing (keeps old b);
    # e and f: new, with a 404 and a decompression bomb: skipped, never added.
    (root / "d.png").write_bytes(png_bytes(5))
    (tmp_path / "b.png").unlink()
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    write_csv(feed, [row("a", "a.png", title="Renamed"), row("b", "b.png"),
                     row("d", f"{base}/d.png"), row("e", f"{base}/gone.png"),
                     row("f", "bomb.png")])
    report = ingest_feed(feed, store, settings=settings)
    assert (report.added, sorted(report.updated), report.deleted) == ([], ["a", "d"], ["c"])
    reasons = {p.id: p.reason for p in report.skipped}
    assert set(reasons) == {"b", "e", "f"}
    assert "not found" in reasons["b"] and "404" in reasons["e"] and "too large" in reasons["f"]
    assert report.version == store.version == 2
    assert store.get("a").title == "Renamed"
    assert store.get("b") == old_b and old_b.image_path.is_file()
    assert store.get("c") is None and not (tmp_path / "store" / "images" / "c.png").exists()
    assert store.get("e") is None and store.get("f") is None
    assert sorted(p.id for p in store.products()) == ["a", "b", "d"]


def test_unusable_feed_leaves_the_catalog_untouched(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    feed = write_csv(tmp_path / "feed.csv", [row("a", "a.png")])
    store = CatalogStore(tmp_path / "store" / "catalog.sqlite")
    ingest_feed(feed, store)
    write_csv(feed, [{"id": "a"}], columns=["id"])
    with pytest.raises(FeedError):
        ingest_feed(feed, store)
    assert len(store) == 1 and store.version == 1
    # A crash before commit leaves a staged folder of an uncommitted version: dropped next time.
    stale = tmp_path / "store" / "images" / ".pending-2"
    stale.mkdir()
    (stale / "a.png").write_bytes(b"half-written")
    write_csv(feed, [row("a", "a.png")])
    assert ingest_feed(feed, store).unchanged == ["a"]
    assert not stale.exists() and store.get("a").image_path.read_bytes() != b"half-written"
    store.close()


def test_photo_folder_without_a_feed_becomes_generated_cards(tmp_path: Path) -> None:
    """Cards carry ingest's ids (a repeated file name included), say they are generated, and
    ingest with file:// links allowed; refused without that permission."""
    from click.testing import CliRunner

    from sketch2fashion.catalog.cards import GENERATED_BRAND, GENERATED_LINK, card_rows
    from sketch2fashion.cli import main
    from sketch2fashion.data.ingest import assign_ids, scan_source

    photos = tmp_path / "photos"
    for relative in ("train/t-shirt/a.png", "validation/t-shirt/a.png", "train/pants/b.png", "train/shoes/c.png"):
        (photos / relative).parent.mkdir(parents=True, exist_ok=True)
        (photos / relative).write_bytes(encode_png(np.full((48, 48, 3), 90, np.uint8)))
    aliases = {"top": ["t-shirt"], "pants": ["pants"]}
    rows = card_rows(photos, ["top", "pants"], aliases)
    assert [r["id"] for r in rows] == assign_ids(scan_source(photos, "top", aliases), photos) + ["b"]
    assert len({r["id"] for r in rows}) == 3 and {r["product_type"] for r in rows} == {"top", "pants"}
    assert all(r["brand"] == GENERATED_BRAND and r["link"].startswith(GENERATED_LINK) for r in rows)
    params = tmp_path / "params.yaml"
    params.write_text("categories: [top, pants]\nsource:\n  aliases: {top: [t-shirt], pants: [pants]}\n")
    feed = tmp_path / "cards" / "products.csv"
    runner = CliRunner()
    written = runner.invoke(main, ["catalog", "cards", str(photos), str(feed), "--params", str(params)])
    assert written.exit_code == 0, written.output
    assert len(read_feed(feed).products) == 3
    store = tmp_path / "catalog.sqlite"
    refused = runner.invoke(main, ["catalog", "ingest", str(feed), "--params", str(params), "--store", str(store)])
    assert "file URL refused" in refused.output
    done = runner.invoke(main, ["catalog", "ingest", str(feed), "--params", str(params), "--store", str(store),
                                "--allow-file-urls"])
    assert done.exit_code == 0, done.output
    with CatalogStore(store) as catalog:
        assert sorted(p.id for p in catalog.products()) == sorted(r["id"] for r in rows)
    empty = runner.invoke(main, ["catalog", "cards", str(tmp_path / "cards"), str(feed), "--params", str(params)])
    assert empty.exit_code != 0 and "no photos of top, pants" in empty.output
