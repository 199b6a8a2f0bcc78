"""Fetch a product photo named by a feed's image_link: a local file or an http(s) URL.

Feeds come from outside, so every link is untrusted. Downloads are streamed with a byte cap and a
total deadline (a huge or endless body costs at most `max_bytes`), must say they are images, and
never reach our own network: the host is resolved once, every address it resolves to must be
public, and the connection is pinned to that checked address so a second DNS answer (DNS
rebinding) cannot swap in 127.0.0.1. Redirects are followed by hand so each hop is checked too.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import httpx

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 10 * MB
DEFAULT_TIMEOUT_S = 10.0
MAX_REDIRECTS = 5
USER_AGENT = "sketch2fashion-catalog/0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """An image that could not be fetched. `reason` is a short fixed phrase reports count by."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def make_client() -> httpx.Client:
    """The client fetch_image expects: no automatic redirects and no proxies from the environment
    (a proxy would resolve hosts itself and bypass the address check)."""
    return httpx.Client(follow_redirects=False, trust_env=False,
                        headers={"User-Agent": USER_AGENT, "Accept": "image/*"})


def fetch_image(link: str, *, base_dir: str | Path, client: httpx.Client,
                max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT_S,
                allow_private: bool = False) -> bytes:
    """The encoded image bytes behind `link`; raises FetchError saying why not.

    Local paths are relative to `base_dir` (the feed's folder) unless absolute or file://.
    `allow_private` lets URLs reach loopback/private hosts (tests, an intranet image server).
    """
    scheme = urlsplit(link).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_url(link, client=client, max_bytes=max_bytes, timeout=timeout,
                          allow_private=allow_private)
    if scheme == "file":
        return read_local(_file_url_path(link), max_bytes=max_bytes)
    if len(scheme) > 1:  # one letter is a Windows drive, i.e. a path
        raise FetchError("unsupported link", f"scheme {scheme!r} in {link!r}")
    return read_local(Path(base_dir) / link, max_bytes=max_bytes)


def read_local(path: Path, *, max_bytes: int) -> bytes:
    """A local image file, refused before reading when it is larger than `max_bytes`."""
    try:
        if not path.is_file():
            raise FetchError("not found", str(path))
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError("too large", f"{path} is {size} bytes (max {max_bytes})")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        detail = f"{path}: {exc.strerror or type(exc).__name__}"
        raise FetchError("unreadable file", detail) from exc
    if len(data) > max_bytes:  # the file grew since stat()
        raise FetchError("too large", f"{path} is over {max_bytes} bytes")
    return data


def _file_url_path(link: str) -> Path:
    parts = urlsplit(link)
    if parts.netloc not in ("", "localhost"):
        raise FetchError("unsupported link", f"file URL on another host: {link!r}")
    return Path(url2pathname(unquote(parts.path)))


# -- http(s) ---------------------------------------------------------------------------------------

def _fetch_url(url: str, *, client: httpx.Client, max_bytes: int, timeout: float,
               allow_private: bool) -> bytes:
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        response = _send_pinned(client, url, timeout=timeout, allow_private=allow_private)
        try:
            if response.is_redirect:
                location = response.headers.get("location", "")
                url = urljoin(url, location)
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise FetchError("unsupported link", f"redirect to {location!r}")
                continue
            return _read_image_body(response, url, max_bytes=max_bytes, deadline=deadline)
        finally:
            response.close()
    raise FetchError("too many redirects", f"more than {MAX_REDIRECTS} from {url}")


def _send_pinned(client: httpx.Client, url: str, *, timeout: float,
                 allow_private: bool) -> httpx.Response:
    """GET `url` from one of its checked addresses, trying the next when one cannot connect
    (a host whose IPv6 address is dead still works over IPv4, as in a browser)."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError("bad link", f"{url!r}: {exc}") from exc
    if not target.host:
        raise FetchError("bad link", f"no host in {url!r}")
    port = target.port or (443 if target.scheme == "https" else 80)
    addresses = resolve_checked(target.host, port, allow_private=allow_private)
    for index, address in enumerate(addresses):
        request = _pinned_request(client, target, address, timeout=timeout)
        try:
            return client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            if index + 1 < len(addresses):
                continue
            raise FetchError("download failed", f"{url}: cannot connect ({exc})") from exc
        except httpx.TimeoutException as exc:
            raise FetchError("timed out", f"{url} ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise FetchError("download failed", f"{url}: {exc or type(exc).__name__}") from exc
    raise AssertionError("resolve_checked returns at least one address")


def _pinned_request(client: httpx.Client, target: httpx.URL, address: IPAddress, *,
                    timeout: float) -> httpx.Request:
    """A GET aimed at the checked `address`, keeping the Host header and TLS name (SNI) intact,
    so certificates are still verified against the host name."""
    extensions: dict[str, object] = {}
    if not _is_ip_literal(target.host):
        extensions["sni_hostname"] = target.host
    return client.build_request("GET", target.copy_with(host=str(address)),
                                headers={"Host": target.netloc.decode("ascii")},
                                extensions=extensions, timeout=httpx.Timeout(timeout))


def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to; refuses a host any of whose addresses is not public.

    All addresses are checked, not just the first: a name that resolves to a public and a
    private address could otherwise be steered to the private one.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("cannot resolve host", f"{host}: {exc}") from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0])
                                   for info in infos))
    if not addresses:
        raise FetchError("cannot resolve host", host)
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise FetchError("private address",
                                 f"{host} resolves to {address}; refused (allow_private=False)")
    return addresses


def is_public_address(address: IPAddress) -> bool:
    """False for loopback, private, link-local, CGNAT, reserved, multicast and unspecified
    addresses, including IPv4 ones wrapped in IPv6 (::ffff:127.0.0.1)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and not is_public_address(embedded):
            return False
    return address.is_global and not address.is_multicast


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_image_body(response: httpx.Response, url: str, *, max_bytes: int,
                     deadline: float) -> bytes:
    """Check status, type and declared size, then stream the body, stopping past the caps."""
    if response.status_code != 200:
        raise FetchError("http error", f"{url} answered {response.status_code}")
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not content_type.startswith("image/"):
        raise FetchError("not an image content-type", f"{url} is {content_type or 'untyped'}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too large", f"{url} is {declared} bytes (max {max_bytes})")
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > max_bytes:
                raise FetchError("too large", f"{url} sent over {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError("timed out", f"{url} took longer than the deadline")
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise FetchError("timed out", f"{url} ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError("download failed", f"{url}: {exc or type(exc).__name__}") from exc
    return b"".join(chunks)
