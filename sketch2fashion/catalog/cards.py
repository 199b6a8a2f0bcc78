"""Generated product cards for a photo folder that comes without a product feed.

A real photo set (`../shared/data/clothing-small`) has photos in class folders and nothing else:
no titles, prices or shop links. The catalog still needs one row per product, so each photo gets
a card named from its category and file, and every field says it was generated: the brand is
`GENERATED_BRAND`, the link points at the reserved `.invalid` domain (RFC 2606: it never
resolves), the description says there was no feed. Ids are the ingest stage's own ids
(`assign_ids`), so a card, its manifest row and its split are the same product.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from sketch2fashion.data.ingest import Aliases, assign_ids, scan_source
from sketch2fashion.imaging.io import write_bytes_atomic

CARD_COLUMNS: tuple[str, ...] = ("id", "title", "description", "link", "image_link", "brand", "product_type")
GENERATED_BRAND = "(generated card)"
GENERATED_LINK = "https://generated-card.invalid/"  # .invalid: reserved, never a real shop
GENERATED_DESCRIPTION = ("Generated card: the photo set has no product feed, so this product is named "
                         "from its folder ({folder}) and file ({file}). No price, no shop page.")


def card_rows(photo_root: str | Path, categories: list[str], aliases: Aliases = None) -> list[dict[str, str]]:
    """One feed row per photo of each category under `photo_root`, in ingest's order."""
    root = Path(photo_root).resolve()
    rows: list[dict[str, str]] = []
    for category in categories:
        files = scan_source(root, category, aliases)
        for item_id, path in zip(assign_ids(files, root), files):
            rows.append({
                "id": item_id,
                "title": f"{category.capitalize()} {item_id[:8]} (generated card)",
                "description": GENERATED_DESCRIPTION.format(folder=path.parent.name, file=path.name),
                "link": f"{GENERATED_LINK}{category}/{item_id}",
                "image_link": path.absolute().as_uri(),
                "brand": GENERATED_BRAND,
                "product_type": category,
            })
    return rows


def write_card_feed(out: str | Path, photo_root: str | Path, categories: list[str],
                    aliases: Aliases = None) -> int:
    """Write the cards as a Merchant-style CSV feed at `out` (atomically); the number of rows.

    Image links are file:// URLs of the photos where they lie (nothing is copied), so the catalog
    must allow them (`catalog.allow_file_urls: true`, as `profiles/real.yaml` sets)."""
    rows = card_rows(photo_root, categories, aliases)
    if not rows:
        raise FileNotFoundError(f"{photo_root}: no photos of {', '.join(categories)} found in class folders "
                                "(<root>/<category>/*.jpg, or one level of split folders); check source.path "
                                "and source.aliases")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CARD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(Path(out), buffer.getvalue().encode("utf-8"))
    return len(rows)
