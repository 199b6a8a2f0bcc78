"""Read a shop's product feed (CSV, TSV or JSONL with Google Merchant Center column names).

Shops export feeds by hand and by plugin, so header spellings drift ("Image Link", "colour",
"category") and single rows go bad (a blank id, a price like "ask us"). A feed that lacks a
required *column* is unusable and fails loudly; a bad *row* is reported with its line number and
skipped, so one typo costs one product, never the catalog.
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REQUIRED_COLUMNS: tuple[str, ...] = ("id", "title", "link", "image_link")
KNOWN_COLUMNS: tuple[str, ...] = (
    "id", "title", "description", "link", "image_link", "price", "currency", "brand", "category",
    "color",
)
# Alternative names -> our name. Where a feed has both, our own name wins (see _column_plan).
COLUMN_ALIASES: Mapping[str, str] = {"product_type": "category", "colour": "color"}
CSV_SUFFIXES = (".csv",)
TSV_SUFFIXES = (".tsv", ".tab")
JSONL_SUFFIXES = (".jsonl", ".ndjson")

_CURRENCY = re.compile(r"[A-Za-z]{3}")
# "24.99", "1,299.00", optionally with an ISO currency before or after: "24.99 USD", "USD 24.99".
_PRICE = re.compile(
    r"(?:(?P<pre>[A-Za-z]{3})\s+)?(?P<amount>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s+(?P<post>[A-Za-z]{3}))?"
)


class FeedError(ValueError):
    """The feed as a whole is unusable (unreadable, unknown format, a required column missing)."""


@dataclass(frozen=True)
class Product:
    """One feed row, normalised. `extra` keeps the columns we have no field for (pattern, ...)."""

    id: str
    title: str
    link: str
    image_link: str
    description: str = ""
    price: Decimal | None = None
    currency: str = ""
    brand: str = ""
    category: str = ""
    color: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RowProblem:
    """Why a row was skipped; `line` is the row's first line in the file (the header is line 1)."""

    line: int
    id: str
    reason: str


@dataclass
class FeedParse:
    """The good rows, the skipped ones, and each good row's line (for later image problems)."""

    products: list[Product]
    problems: list[RowProblem]
    lines: dict[str, int] = field(default_factory=dict)


def read_feed(path: str | Path) -> FeedParse:
    """Parse a feed file; the format follows the extension (.csv, .tsv/.tab, .jsonl/.ndjson)."""
    path = Path(path)
    if not path.is_file():
        raise FeedError(f"{path}: product feed not found")
    suffix = path.suffix.lower()
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            if suffix in CSV_SUFFIXES + TSV_SUFFIXES:
                records = _delimited_records(fh, path, "\t" if suffix in TSV_SUFFIXES else ",")
            elif suffix in JSONL_SUFFIXES:
                records = _jsonl_records(fh, path)
            else:
                raise FeedError(f"{path}: unknown feed format {suffix!r}; use .csv, .tsv or .jsonl")
            return _parse_records(records)
    except UnicodeDecodeError as exc:
        raise FeedError(f"{path}: not UTF-8 ({exc}); re-export the feed as UTF-8") from exc
    except csv.Error as exc:
        raise FeedError(f"{path}: not a readable CSV/TSV feed ({exc})") from exc


def normalise_column(name: str) -> str:
    """'Image Link', 'image-link', 'g:image_link' -> 'image_link'; aliases map to our names."""
    key = _plain_column(name)
    return COLUMN_ALIASES.get(key, key)


def _plain_column(name: str) -> str:
    """A header spelled the one way (lower case, underscores, no 'g:' prefix); aliases kept."""
    return re.sub(r"[\s-]+", "_", name.strip().lower()).removeprefix("g:")


def parse_price(text: str) -> tuple[Decimal | None, str]:
    """'24.99' -> (24.99, ''), '24.99 USD' -> (24.99, 'USD'), '' -> (None, ''); else ValueError."""
    text = text.strip()
    if not text:
        return None, ""
    match = _PRICE.fullmatch(text)
    if match is None or (match["pre"] and match["post"]):
        raise ValueError(f"unparseable price {text!r}")
    try:
        amount = Decimal(match["amount"].replace(",", ""))
    except InvalidOperation as exc:  # the regex makes this unreachable; kept as a guard
        raise ValueError(f"unparseable price {text!r}") from exc
    return amount, (match["pre"] or match["post"] or "").upper()


# -- records: (line, {normalised column: text}) from each format ---------------------------------

Record = tuple[int, dict[str, str] | str]  # a row's fields, or a reason it could not be read


def _delimited_records(fh: Any, path: Path, delimiter: str) -> Iterator[Record]:
    reader = csv.reader(fh, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise FeedError(f"{path}: the feed is empty (no header row)")
    columns = _column_plan(header, path)
    last_line = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): this row only
            line, last_line = last_line + 1, reader.line_num
            yield line, f"unreadable row ({exc})"
            continue
        line, last_line = last_line + 1, reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield line, f"row has {len(values)} fields, the header has {len(header)}"
            continue
        yield line, _pick(columns, values)


def _jsonl_records(fh: Any, path: Path) -> Iterator[Record]:
    """JSON Lines; columns are the union of all keys, so the required check sees the whole file."""
    rows: list[tuple[int, dict[str, Any] | str]] = []
    keys: dict[str, None] = {}
    for line, text in enumerate(fh, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.append((line, f"invalid JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            rows.append((line, "not a JSON object"))
            continue
        rows.append((line, obj))
        keys.update(dict.fromkeys(obj))
    names = list(keys)
    columns = _column_plan(names, path)
    for line, obj in rows:
        if isinstance(obj, str):
            yield line, obj
            continue
        try:
            yield line, _pick(columns, [_json_text(obj.get(name)) for name in names])
        except ValueError as exc:
            yield line, str(exc)


def _json_text(value: Any) -> str:
    """A JSON value as feed text; Merchant API prices ({"value", "currency"}) become '24.99 USD'."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and set(value) <= {"value", "currency"} and "value" in value:
        return f"{_json_text(value['value'])} {_json_text(value.get('currency'))}".strip()
    raise ValueError(f"a field holds {type(value).__name__}, expected text or a number")


def _column_plan(header: list[str], path: Path) -> list[tuple[int, str]]:
    """(position, name) for each column we keep; checks the required columns are present.

    Our own name beats an alias ('category' over 'product_type'); the loser becomes an extra
    under its original name, so nothing the shop sent is dropped.
    """
    raw = [_plain_column(h) for h in header]
    normal = [COLUMN_ALIASES.get(r, r) for r in raw]
    plan: list[tuple[int, str]] = []
    taken: set[str] = set()
    for preferred in (True, False):
        for index, (original, name) in enumerate(zip(raw, normal)):
            if (original == name) != preferred:
                continue
            target = name if name not in taken else original
            if not target or target in taken:
                continue  # a blank or repeated header: the first column of that name wins
            taken.add(target)
            plan.append((index, target))
    missing = [name for name in REQUIRED_COLUMNS if name not in taken]
    if missing:
        aliases = ", ".join(f"{a} for {b}" for a, b in COLUMN_ALIASES.items())
        raise FeedError(
            f"{path}: missing required column(s): {', '.join(missing)}. Expected Merchant Center "
            f"names {', '.join(REQUIRED_COLUMNS)} (optional: description, price, currency, brand, "
            f"product_type or category, color; also accepted: {aliases}). "
            f"Found: {', '.join(h for h in header if h) or 'no columns'}"
        )
    return sorted(plan)


def _pick(columns: list[tuple[int, str]], values: list[str]) -> dict[str, str]:
    return {name: values[index].strip() for index, name in columns}


# -- records -> products ---------------------------------------------------------------------------

def _parse_records(records: Iterator[Record]) -> FeedParse:
    products: list[Product] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    for line, fields in records:
        if isinstance(fields, str):
            problems.append(RowProblem(line, "", fields))
            continue
        product_id = fields.get("id", "")
        if not product_id:
            problems.append(RowProblem(line, "", "empty id"))
            continue
        if product_id in first_line:
            problems.append(RowProblem(line, product_id,
                                       f"duplicate id (first on line {first_line[product_id]})"))
            continue
        first_line[product_id] = line
        try:
            products.append(_product(fields))
        except ValueError as exc:
            problems.append(RowProblem(line, product_id, str(exc)))
    lines = {p.id: first_line[p.id] for p in products}
    return FeedParse(products=products, problems=problems, lines=lines)


def _product(fields: dict[str, str]) -> Product:
    """One row's fields as a Product; ValueError says what is wrong with the row."""
    link = fields.get("link", "")
    if not is_http_url(link):
        raise ValueError(f"link is not an http(s) URL: {link!r}" if link else "empty link")
    image_link = fields.get("image_link", "")
    if not image_link:
        raise ValueError("empty image_link")
    scheme = urlsplit(image_link).scheme.lower()
    if len(scheme) > 1 and scheme not in ("http", "https", "file"):  # 1 letter: a Windows drive
        raise ValueError(f"image_link scheme {scheme!r} is not supported (http, https, file, path)")
    price, price_currency = parse_price(fields.get("price", ""))
    currency = fields.get("currency", "").upper()
    if currency and not _CURRENCY.fullmatch(currency):
        raise ValueError(f"currency {currency!r} is not a 3-letter ISO code")
    if price_currency and currency and price_currency != currency:
        raise ValueError(f"price says {price_currency} but the currency column says {currency}")
    known = set(KNOWN_COLUMNS)
    return Product(
        id=fields["id"],
        title=fields.get("title", ""),
        link=link,
        image_link=image_link,
        description=fields.get("description", ""),
        price=price,
        currency=price_currency or currency,
        brand=fields.get("brand", ""),
        category=fields.get("category", "").lower(),
        color=fields.get("color", ""),
        extra={k: v for k, v in fields.items() if k not in known and v},
    )


def is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
