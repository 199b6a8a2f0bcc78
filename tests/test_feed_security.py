"""Feed ingest treated as an attacker would feed it: paths, SSRF, deadlines, bombs, concurrency.

Real servers on loopback (plain HTTP and HTTPS with a self-signed certificate made here with
`cryptography`); no connection ever leaves the machine. A resolver stub answers every name
(`socket.getaddrinfo`: names map to the addresses a test chooses, unknown names fail, only
literal addresses reach the real resolver, which then does no lookup), and a connection guard
(`socket.create_connection`, what httpx's transport calls) routes the "public" addresses a test
names to its loopback server and fails the test on any other non-loopback address.
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sketch2fashion.catalog.feed import read_feed
from sketch2fashion.catalog.fetch import FetchError, embedded_ipv4, fetch_image, is_public_address, make_client
from sketch2fashion.catalog.store import CatalogStore, IngestSettings, ingest_feed
from test_catalog_feed import png_bytes, row, write_csv
from waiting import HANG_SECONDS, wait_until

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = "93.184.216.34"
"""A public address the tests pretend a shop's CDN has; the guard routes it to loopback."""
IMAGE = png_bytes(7)


# -- the network: resolver stub and connection guard ----------------------------------------------

class Network:
    """Names -> addresses for the resolver stub; public addresses -> loopback for the guard."""

    def __init__(self) -> None:
        self.names: dict[str, list[tuple[str, ...]]] = {}
        self.routes: dict[str, str] = {PUBLIC: "127.0.0.1"}
        self.lookups: list[str] = []
        self.connections: list[str] = []
        self.escaped: list[tuple] = []
        self.stall = threading.Event()  # released at teardown: a stalled lookup then returns
        self._real_getaddrinfo = socket.getaddrinfo
        self._real_connect = socket.create_connection

    def name(self, host: str, *answers: tuple[str, ...] | str) -> None:
        """`host` answers each of `answers` in turn (the last one from then on)."""
        self.names[host] = [a if isinstance(a, tuple) else (a,) for a in answers]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
        self.lookups.append(host)
        if host == "stall.example":
            self.stall.wait(HANG_SECONDS)
        if host in self.names:
            answers = self.names[host]
            addresses = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in addresses]
        return self._real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    def create_connection(self, address, *args, **kwargs):
        host, port = address[0], address[1]
        self.connections.append(host)
        target = self.routes.get(host, host)
        if not ipaddress.ip_address(target).is_loopback:
            self.escaped.append(address)
            raise AssertionError(f"a connection to {address} would have left the machine")
        return self._real_connect((target, port), *args, **kwargs)


@pytest.fixture()
def network(monkeypatch) -> Iterator[Network]:
    net = Network()
    monkeypatch.setattr(socket, "getaddrinfo", net.getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", net.create_connection)
    yield net
    net.stall.set()
    assert not net.escaped, f"connections outside loopback were attempted: {net.escaped}"


# -- servers ---------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """/a.png, /redirect?to=URL, /hop/N (0.4 s, then to N-1; 0 is the image), /drip.png (a byte
    every 50 ms, for ever), /bomb.png (gzip that inflates to 200 MB), /hold.png (waits for the
    test's `release`). Every request's headers are kept in `seen`."""

    seen: list[dict[str, str]]
    state: dict

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        if path == "/a.png":
            self._image(IMAGE)
        elif path == "/redirect":
            self._redirect(query["to"][0])
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            time.sleep(0.4)  # the server is slow; the client's one deadline must notice the sum
            self._redirect("/a.png" if left == 0 else f"/hop/{left - 1}")
        elif path == "/drip.png":
            self._drip()
        elif path == "/bomb.png":
            self._image(self.state["bomb"], encoding="gzip")
        elif path == "/hold.png":
            self.state["holding"].set()
            self.state["release"].wait(HANG_SECONDS)
            self._image(IMAGE)
        else:
            self.send_error(404)

    def _image(self, body: bytes, encoding: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for _ in range(int(HANG_SECONDS * 20)):
                self.wfile.write(b"\x89")
                self.wfile.flush()
                self.state["dripped"] += 1
                time.sleep(0.05)
        except OSError:
            pass  # the client hung up: what the deadline is for
        finally:
            self.state["drip_done"].set()

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-body are the point of several tests


def gzip_bomb(inflated: int = 200 * 1024 * 1024) -> bytes:
    """A gzip body of a few hundred KB that inflates to `inflated` bytes of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = bytes(1024 * 1024)
    return b"".join([packer.compress(block) for _ in range(inflated // len(block))] + [packer.flush()])


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (and its key), signed by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Served:
    """A running loopback server: its port, the requests it saw and its handler state."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict[str, str]] = []
        self.state = {"dripped": 0, "drip_done": threading.Event(), "holding": threading.Event(),
                      "release": threading.Event(), "bomb": b""}
        handler = type("BoundHandler", (Handler,), {"seen": self.seen, "state": self.state})
        self.httpd = QuietServer(("127.0.0.1", 0), handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.state["release"].set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def web() -> Iterator[Served]:
    served = Served()
    yield served
    served.close()


@pytest.fixture()
def client() -> Iterator:
    with make_client() as http:
        yield http


def fetch(link: str, client, **kwargs) -> bytes:
    return fetch_image(link, base_dir="/nonexistent", client=client, **kwargs)


# -- the address check -----------------------------------------------------------------------------

@pytest.mark.parametrize("address,public", [
    ("93.184.216.34", True), ("2606:4700::1111", True),
    ("64:ff9b::5db8:d822", True),          # NAT64 of a public IPv4 host (DNS64 on an IPv6-only network)
    ("2002:5db8:d822::1", True),           # 6to4 of a public host
    ("::ffff:93.184.216.34", True),        # IPv4-mapped public host
    ("127.0.0.1", False), ("10.1.2.3", False), ("100.64.0.1", False), ("169.254.169.254", False),
    ("192.0.0.8", False), ("192.0.2.1", False), ("198.18.0.1", False), ("192.88.99.1", False),
    ("240.0.0.1", False), ("255.255.255.255", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("::", False), ("fc00::1", False), ("fe80::1", False), ("ff02::1", False),
    ("2001:db8::1", False), ("100::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),              # IPv4-mapped
    ("64:ff9b::7f00:1", False), ("64:ff9b::a9fe:a9fe", False),           # NAT64 of loopback, of metadata
    ("64:ff9b:1::a00:1", False), ("64:ff9b:1::5db8:d822", False),        # local-use NAT64 prefix
    ("::7f00:1", False), ("::a00:1", False), ("::5db8:d822", False),     # IPv4-compatible (deprecated)
    ("2002:7f00:1::1", False), ("2002:c0a8:101::1", False),              # 6to4 of loopback, of 192.168.1.1
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),                      # Teredo
])
def test_public_address_check_unwraps_every_ipv6_form_of_ipv4(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_embedded_ipv4_is_found_in_each_wrapping():
    expect = ipaddress.ip_address("127.0.0.1")
    for wrapped in ("::ffff:127.0.0.1", "64:ff9b::127.0.0.1", "::127.0.0.1", "2002:7f00:1::"):
        assert embedded_ipv4(ipaddress.ip_address(wrapped)) == expect, wrapped
    teredo = ipaddress.ip_address("2001:0:4136:e378:8000:63bf:80ff:fffe")
    assert embedded_ipv4(teredo) == ipaddress.ip_address("127.0.0.1")  # the client, de-obfuscated


# -- http(s) ---------------------------------------------------------------------------------------

def test_https_on_loopback_by_name_with_a_self_signed_certificate(tmp_path, network):
    cert, key = self_signed(tmp_path, "shop.example")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    served = Served(tls)
    trusting = ssl.create_default_context(cafile=str(cert))
    network.name("shop.example", "127.0.0.1")
    network.name("impostor.example", "127.0.0.1")
    try:
        with make_client(verify=trusting) as client:
            url = f"https://shop.example:{served.port}/a.png"
            with pytest.raises(FetchError, match="private address"):
                fetch(url, client)
            assert network.connections == []  # refused before connecting
            assert fetch(url, client, allow_private=True) == IMAGE
            assert network.connections == ["127.0.0.1"]  # pinned to the checked address
            assert served.seen[-1]["host"] == f"shop.example:{served.port}"  # Host and SNI kept
            assert served.seen[-1]["accept-encoding"] == "identity"
            # Same server, another name: the certificate is checked against the name asked for.
            with pytest.raises(FetchError, match="download failed"):
                fetch(f"https://impostor.example:{served.port}/a.png", client, allow_private=True)
    finally:
        served.close()


def test_a_redirect_from_a_public_host_to_a_private_one_is_refused(web, network, client):
    network.name("cdn.example", PUBLIC)
    network.name("intranet.example", "10.0.0.7")
    port = web.port
    assert fetch(f"http://cdn.example:{port}/a.png", client) == IMAGE  # the public host itself serves
    for private in (f"http://intranet.example:{port}/a.png", f"http://127.0.0.1:{port}/a.png",
                    f"http://[::ffff:127.0.0.1]:{port}/a.png", f"http://[64:ff9b::7f00:1]:{port}/a.png",
                    f"http://[::7f00:1]:{port}/a.png"):
        network.connections.clear()
        with pytest.raises(FetchError, match="private address"):
            fetch(f"http://cdn.example:{port}/redirect?to={private}", client)
        assert network.connections == [PUBLIC], private  # the first hop only; the private one never


def test_no_dns_rebinding_the_checked_address_is_the_one_connected_to(web, network, client):
    network.name("rebind.example", PUBLIC, "127.0.0.1")  # public when checked, private afterwards
    assert fetch(f"http://rebind.example:{web.port}/a.png", client) == IMAGE
    assert network.lookups.count("rebind.example") == 1
    assert network.connections == [PUBLIC]  # a second lookup at connect time would have said 127.0.0.1
    with pytest.raises(FetchError, match="private address"):  # the next fetch sees the new answer
        fetch(f"http://rebind.example:{web.port}/a.png", client)
    network.name("split.example", (PUBLIC, "192.168.1.5"))  # one public and one private answer
    with pytest.raises(FetchError, match="private address"):
        fetch(f"http://split.example:{web.port}/a.png", client)


def test_one_deadline_covers_dns_every_redirect_hop_and_the_body(web, network, client):
    network.name("slow.example", PUBLIC)
    # A body that drips a byte every 50 ms for ever: stopped by the deadline, not by a read timeout.
    with pytest.raises(FetchError, match="timed out"):
        fetch(f"http://slow.example:{web.port}/drip.png", client, timeout=1.0)
    assert wait_until(lambda: web.state["drip_done"].is_set(), "the dripping server to see the hang-up")
    # Five redirect hops of 0.4 s each: every hop is quick enough alone, the chain is not.
    assert fetch(f"http://slow.example:{web.port}/hop/1", client, timeout=5.0) == IMAGE
    with pytest.raises(FetchError, match="timed out"):
        fetch(f"http://slow.example:{web.port}/hop/5", client, timeout=1.0)
    # A resolver that never answers.
    with pytest.raises(FetchError, match="timed out.*resolving stall.example"):
        fetch(f"http://stall.example:{web.port}/a.png", client, timeout=0.5)


def test_a_gzip_bomb_is_refused_not_inflated(web, network, client):
    web.state["bomb"] = gzip_bomb()
    assert len(web.state["bomb"]) < 1024 * 1024  # 200 MB once inflated
    network.name("cdn.example", PUBLIC)
    with pytest.raises(FetchError, match="compressed body"):
        fetch(f"http://cdn.example:{web.port}/bomb.png", client)
    assert web.seen[-1]["accept-encoding"] == "identity"


# -- local paths -----------------------------------------------------------------------------------

def test_local_paths_stay_inside_the_feeds_folder(tmp_path, client):
    feed_dir, outside = tmp_path / "feed", tmp_path / "outside"
    (feed_dir / "photos").mkdir(parents=True)
    outside.mkdir()
    (feed_dir / "photos" / "a.png").write_bytes(IMAGE)
    (outside / "secret.png").write_bytes(png_bytes(9))
    (feed_dir / "inside-link.png").symlink_to(feed_dir / "photos" / "a.png")
    (feed_dir / "outside-link.png").symlink_to(outside / "secret.png")
    (feed_dir / "outside-dir").symlink_to(outside, target_is_directory=True)

    def local(link: str, **kwargs) -> bytes:
        return fetch_image(link, base_dir=feed_dir, client=client, **kwargs)

    assert local("photos/a.png") == IMAGE and local("inside-link.png") == IMAGE
    for link in ("../outside/secret.png", "photos/../../outside/secret.png", str(outside / "secret.png"),
                 "outside-link.png", "outside-dir/secret.png"):
        with pytest.raises(FetchError, match="outside the feed's folder"):
            local(link)
    uri = (outside / "secret.png").as_uri()
    with pytest.raises(FetchError, match="file URL refused"):
        local(uri)
    assert local(uri, allow_file_urls=True) == png_bytes(9)  # the operator's explicit choice

    # Through an ingest: each bad link costs its row, with the reason, nothing else.
    feed = write_csv(feed_dir / "feed.csv", [row("ok", "photos/a.png"), row("up", "../outside/secret.png"),
                                             row("abs", str(outside / "secret.png")),
                                             row("link", "outside-link.png"), row("uri", uri)])
    with CatalogStore(tmp_path / "store" / "catalog.sqlite") as store:
        report = ingest_feed(feed, store)
        assert report.added == ["ok"]
        reasons = {p.id: p.reason for p in report.skipped}
        assert all("outside the feed's folder" in reasons[i] for i in ("up", "abs", "link"))
        assert "file URL refused" in reasons["uri"]


# -- the store -------------------------------------------------------------------------------------

def test_a_csv_field_too_large_for_the_csv_module_costs_one_row(tmp_path):
    import csv

    feed = write_csv(tmp_path / "feed.csv", [row("a", "a.png"), row("huge", "h.png",
                                             description="x" * (csv.field_size_limit() + 10)), row("c", "c.png")])
    parsed = read_feed(feed)
    assert [p.id for p in parsed.products] == ["a", "c"]
    assert len(parsed.problems) == 1 and parsed.problems[0].line == 3
    assert "field larger than field limit" in parsed.problems[0].reason


def test_a_second_ingest_fails_with_one_line_and_downloads_hold_no_write_lock(tmp_path, web):
    import sqlite3

    feed = write_csv(tmp_path / "feed.csv", [row("a", f"http://127.0.0.1:{web.port}/hold.png"),
                                             row("b", f"http://127.0.0.1:{web.port}/a.png")])
    store_path = tmp_path / "store" / "catalog.sqlite"
    outcome: dict = {}

    def first_ingest() -> None:
        with CatalogStore(store_path) as store:
            outcome["report"] = ingest_feed(feed, store, settings=IngestSettings(allow_private=True, jobs=2))

    first = threading.Thread(target=first_ingest)
    first.start()
    try:
        assert web.state["holding"].wait(HANG_SECONDS), "the first ingest never asked for its photo"
        # While it downloads, the database takes a writer at once: no transaction is held open.
        probe = sqlite3.connect(store_path, timeout=0, isolation_level=None)
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        probe.close()
        second = subprocess.run([sys.executable, "-m", "sketch2fashion.cli", "catalog", "ingest", str(feed),
                                 "--store", str(store_path), "--allow-private"],
                                cwd=ROOT, capture_output=True, text=True, timeout=HANG_SECONDS)
        assert second.returncode != 0 and "Traceback" not in second.stderr
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "another catalog ingest is running" in lines[0], second.stderr
    finally:
        web.state["release"].set()
        first.join(HANG_SECONDS)
    assert sorted(outcome["report"].added) == ["a", "b"]
    with CatalogStore(store_path) as store:
        assert store.version == 1 and len(store) == 2 and store.get("a").image_path.is_file()
        again = ingest_feed(feed, store, settings=IngestSettings(allow_private=True))  # the lock was freed
        assert sorted(again.unchanged) == ["a", "b"]
