"""Fetch a product photo named by a feed's image_link: a local file or an http(s) URL.

Feeds come from outside, so every link is untrusted.

- A local path must stay inside the feed's folder: absolute paths and `..` are refused, and the
  opened file's real path (symlinks followed) must lie inside the folder. `file://` links are
  refused unless the operator allows them (`allow_file_urls`).
- Downloads never reach our own network: the host is resolved once, every address it resolves
  to must be public (IPv4 wrapped in IPv6, NAT64 and 6to4 included, see `is_public_address`),
  and the connection is pinned to that checked address, so a second DNS answer (DNS
  rebinding) cannot swap in 127.0.0.1. Redirects are followed by hand so each hop is checked.
- One deadline covers the DNS lookup, every redirect hop and the body; the body is read raw
  (`Accept-Encoding: identity`; a compressed answer is refused, never inflated) up to a byte cap,
  and must say it is an image.
"""
from __future__ import annotations

import ipaddress
import os
import queue
import re
import socket
import ssl
import threading
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

NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
"""RFC 6052: the IPv4 address is the last 32 bits; reaches whatever IPv4 host that names."""
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
"""RFC 8215: an operator's own translator; the embedded IPv4 sits at a prefix-dependent place."""
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
"""Deprecated IPv4-compatible IPv6 (::a.b.c.d); ::1 and :: are in it too."""
NOT_PUBLIC = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
    "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
"""Special-purpose ranges (IANA registries) refused whatever Python's is_global says of them."""
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class FetchError(Exception):
    """An image that could not be fetched. `reason` is a short fixed phrase reports count by."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def make_client(*, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """The client fetch_image expects: no automatic redirects, no proxies from the environment
    (a proxy would resolve hosts itself and bypass the address check), raw bodies only.
    `verify` is httpx's: a test passes an SSL context that trusts its own certificate."""
    return httpx.Client(follow_redirects=False, trust_env=False, verify=verify,
                        headers={"User-Agent": USER_AGENT, "Accept": "image/*",
                                 "Accept-Encoding": "identity"})


def fetch_image(link: str, *, base_dir: str | Path, client: httpx.Client,
                max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT_S,
                allow_private: bool = False, allow_file_urls: bool = False) -> bytes:
    """The encoded image bytes behind `link`; raises FetchError saying why not.

    Local paths are relative to `base_dir` (the feed's folder) and must stay inside it.
    `allow_private` lets URLs reach loopback/private hosts (tests, an intranet image server);
    `allow_file_urls` lets `file://` links name any local file.
    """
    scheme = urlsplit(link).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_url(link, client=client, max_bytes=max_bytes, deadline=Deadline(timeout),
                          allow_private=allow_private)
    if scheme == "file":
        if not allow_file_urls:
            raise FetchError("file URL refused", f"{link!r}; give the path relative to the feed's folder, "
                             "or allow file:// links (catalog.allow_file_urls, --allow-file-urls)")
        return read_local(_file_url_path(link), max_bytes=max_bytes)
    if len(scheme) > 1 and not _WINDOWS_DRIVE.match(link):
        raise FetchError("unsupported link", f"scheme {scheme!r} in {link!r}")
    return read_local(_inside(Path(base_dir), link), max_bytes=max_bytes, inside=Path(base_dir))


def _inside(base_dir: Path, link: str) -> Path:
    """`link` as a path under `base_dir`, refused when it is absolute or climbs out with '..'."""
    relative = Path(link)
    if relative.is_absolute() or _WINDOWS_DRIVE.match(link) or link.startswith("\\\\"):
        raise FetchError("outside the feed's folder", f"{link!r} is an absolute path; give it relative to the "
                         "feed's folder")
    if ".." in relative.parts:
        raise FetchError("outside the feed's folder", f"{link!r} climbs out with '..'")
    return base_dir / relative


def read_local(path: Path, *, max_bytes: int, inside: Path | None = None) -> bytes:
    """A local image file, refused before reading when it is larger than `max_bytes`.

    With `inside`, the file actually opened (symlinks followed, checked on the open descriptor,
    so a link swapped in after a check changes nothing) must lie under that folder.
    """
    try:
        if not path.is_file():
            raise FetchError("not found", str(path))
        with path.open("rb") as fh:
            if inside is not None:
                real = _opened_path(fh.fileno(), path)
                root = inside.resolve()
                if real != root and root not in real.parents:
                    raise FetchError("outside the feed's folder", f"{path} leads to {real} (a symlink out of "
                                     f"{root})")
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise FetchError("too large", f"{path} is {size} bytes (max {max_bytes})")
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        detail = f"{path}: {exc.strerror or type(exc).__name__}"
        raise FetchError("unreadable file", detail) from exc
    if len(data) > max_bytes:  # the file grew since fstat()
        raise FetchError("too large", f"{path} is over {max_bytes} bytes")
    return data


def _opened_path(fd: int, path: Path) -> Path:
    """The real path of an open file: /proc/self/fd where there is one, else resolve()."""
    link = Path(f"/proc/self/fd/{fd}")
    try:
        return Path(os.readlink(link))
    except OSError:
        return path.resolve()


def _file_url_path(link: str) -> Path:
    parts = urlsplit(link)
    if parts.netloc not in ("", "localhost"):
        raise FetchError("unsupported link", f"file URL on another host: {link!r}")
    return Path(url2pathname(unquote(parts.path)))


class Deadline:
    """One time limit for a whole fetch: DNS, every redirect hop and the body."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self, what: str) -> float:
        """Seconds left; FetchError("timed out") once there are none."""
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise FetchError("timed out", f"{what}: past the {self.seconds:g} s deadline")
        return remaining


# -- http(s) ---------------------------------------------------------------------------------------

def _fetch_url(url: str, *, client: httpx.Client, max_bytes: int, deadline: Deadline,
               allow_private: bool) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        response = _send_pinned(client, url, deadline=deadline, allow_private=allow_private)
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


def _send_pinned(client: httpx.Client, url: str, *, deadline: Deadline,
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
    addresses = resolve_checked(target.host, port, allow_private=allow_private, deadline=deadline)
    for index, address in enumerate(addresses):
        request = _pinned_request(client, target, address, timeout=deadline.left(url))
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
    so certificates are still verified against the host name. Every wait (connect, each read)
    is bounded by what is left of the deadline."""
    extensions: dict[str, object] = {}
    if not _is_ip_literal(target.host):
        extensions["sni_hostname"] = target.host
    return client.build_request("GET", target.copy_with(host=str(address)),
                                headers={"Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"},
                                extensions=extensions, timeout=httpx.Timeout(timeout))


def resolve_checked(host: str, port: int, *, allow_private: bool,
                    deadline: Deadline | None = None) -> list[IPAddress]:
    """The addresses to connect to; refuses a host any of whose addresses is not public.

    All addresses are checked, not just the first: a name that resolves to a public and a
    private address could otherwise be steered to the private one.
    """
    infos = _getaddrinfo(host, port, deadline or Deadline(DEFAULT_TIMEOUT_S))
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


def _getaddrinfo(host: str, port: int, deadline: Deadline) -> list:
    """socket.getaddrinfo within the deadline: the system resolver has no timeout of its own, so
    it runs in a daemon thread that is abandoned (to finish on its own) when the deadline passes."""
    answers: queue.SimpleQueue = queue.SimpleQueue()

    def lookup() -> None:
        try:
            answers.put(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            answers.put(exc)

    threading.Thread(target=lookup, name="s2f-resolve", daemon=True).start()
    try:
        answer = answers.get(timeout=deadline.left(f"resolving {host}"))
    except queue.Empty:
        raise FetchError("timed out", f"resolving {host}: past the {deadline.seconds:g} s deadline") from None
    if isinstance(answer, (socket.gaierror, UnicodeError)):
        raise FetchError("cannot resolve host", f"{host}: {answer}") from answer
    if isinstance(answer, Exception):
        raise FetchError("cannot resolve host", f"{host}: {type(answer).__name__}: {answer}") from answer
    return answer


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 address reaches: IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96),
    6to4 (2002::/16) or Teredo (the client); None for a plain IPv6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public_address(address: IPAddress) -> bool:
    """False for loopback, private, link-local, CGNAT, documentation, benchmarking, reserved,
    multicast and unspecified addresses, and for IPv6 addresses that reach such an IPv4 host
    (::ffff:127.0.0.1, 64:ff9b::a00:1, ::7f00:1, 2002:7f00:1::, Teredo) or lie in an operator's
    own NAT64 prefix (64:ff9b:1::/48)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and not is_public_address(inner):
            return False
        if address.ipv4_mapped is not None or address in NAT64_WELL_KNOWN:
            return True  # a public IPv4 host over IPv4 or through the DNS64/NAT64 of an IPv6-only network
    if any(address in network for network in NOT_PUBLIC if network.version == address.version):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_loopback)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_image_body(response: httpx.Response, url: str, *, max_bytes: int,
                     deadline: Deadline) -> bytes:
    """Check status, type, encoding and declared size, then stream the raw body within the caps.

    A compressed answer (we asked for identity) is refused rather than inflated: a few KB of gzip
    can inflate to gigabytes.
    """
    if response.status_code != 200:
        raise FetchError("http error", f"{url} answered {response.status_code}")
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not content_type.startswith("image/"):
        raise FetchError("not an image content-type", f"{url} is {content_type or 'untyped'}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding != "identity":
        raise FetchError("compressed body", f"{url} sent Content-Encoding {encoding!r} (we ask for identity)")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too large", f"{url} is {declared} bytes (max {max_bytes})")
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise FetchError("too large", f"{url} sent over {max_bytes} bytes")
            chunks.append(chunk)
            deadline.left(url)
    except httpx.TimeoutException as exc:
        raise FetchError("timed out", f"{url} ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError("download failed", f"{url}: {exc or type(exc).__name__}") from exc
    return b"".join(chunks)
