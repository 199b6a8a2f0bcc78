"""The catalog index on Qdrant: the scale-out twin of the embedded index, with the same search interface.

Why aliases: a rebuild fills a fresh physical collection and then moves the serving alias onto it in one
atomic ``update_collection_aliases`` call, the Qdrant equivalent of the embedded index's CURRENT pointer
swap, so queries during a rebuild never see a half-filled collection.
Works against a server (``http(s)://...``) or Qdrant's in-process local mode (``":memory:"`` or a folder).
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sketch2fashion.catalog.index import (
    Hit,
    HnswParams,
    ProductTable,
    as_product_table,
    new_version_name,
    normalise_rows,
)

PRODUCT_ID_NAMESPACE = uuid.UUID("6f1c54a2-4a43-4f0e-9d5e-2b8f6c1e7a10")


def point_id(product_id: str) -> str:
    """Qdrant wants int or UUID ids; a name-based UUID makes upserts idempotent per product id."""
    return str(uuid.uuid5(PRODUCT_ID_NAMESPACE, product_id))


def make_client(url_or_path: str) -> Any:
    from qdrant_client import QdrantClient

    if url_or_path.startswith(("http://", "https://")):
        return QdrantClient(url=url_or_path, check_compatibility=False)  # no request at construction
    if url_or_path == ":memory:":
        return QdrantClient(location=":memory:")
    return QdrantClient(path=url_or_path)


def payload_filter(category: str | None, brand: str | None, price_min: float | None, price_max: float | None) -> Any:
    """All given conditions must hold (exact match on category/brand, inclusive price range)."""
    from qdrant_client import models

    must: list[Any] = []
    if category is not None:
        must.append(models.FieldCondition(key="category", match=models.MatchValue(value=category)))
    if brand is not None:
        must.append(models.FieldCondition(key="brand", match=models.MatchValue(value=brand)))
    if price_min is not None or price_max is not None:
        must.append(models.FieldCondition(key="price", range=models.Range(gte=price_min, lte=price_max)))
    return models.Filter(must=must) if must else None


class QdrantIndex:
    """Catalog search on a Qdrant collection alias; ``build`` swaps in a fresh collection atomically."""

    def __init__(
        self,
        url_or_path: str,
        collection: str = "products",
        *,
        client: Any | None = None,
        hnsw: HnswParams | None = None,
        batch_size: int = 512,
        keep_old: int = 0,
    ) -> None:
        self.location = url_or_path
        self.alias = collection
        self.client = client if client is not None else make_client(url_or_path)
        self.hnsw = hnsw or HnswParams()
        self.batch_size = batch_size
        self.keep_old = keep_old
        self.is_remote = url_or_path.startswith(("http://", "https://"))

    # -- writing --------------------------------------------------------------------------------------------
    def build(self, vectors: np.ndarray, metadata: ProductTable | Sequence[Mapping[str, Any]]) -> str:
        """Fill a new physical collection, point the alias at it atomically, drop superseded ones."""
        from qdrant_client import models

        table = as_product_table(metadata)
        vectors = normalise_rows(vectors)
        physical = f"{self.alias}-{new_version_name()}"
        self.client.create_collection(
            physical,
            vectors_config=models.VectorParams(size=int(vectors.shape[1]), distance=models.Distance.COSINE),
            hnsw_config=models.HnswConfigDiff(m=self.hnsw.M, ef_construct=self.hnsw.ef_construction),
        )
        if self.is_remote:  # payload indexes make filtered HNSW fast on a server; local mode ignores them
            for key, schema in (("category", models.PayloadSchemaType.KEYWORD),
                                ("brand", models.PayloadSchemaType.KEYWORD),
                                ("price", models.PayloadSchemaType.FLOAT)):
                self.client.create_payload_index(physical, field_name=key, field_schema=schema)
        self._upload(physical, vectors, table)
        self._swap_alias(physical)
        return physical

    def upsert(self, vectors: np.ndarray, metadata: ProductTable | Sequence[Mapping[str, Any]]) -> None:
        """Add or replace products in the serving collection (creates it when there is none yet)."""
        if self._serving_collection() is None:
            self.build(vectors, metadata)
            return
        self._upload(self.alias, normalise_rows(vectors), as_product_table(metadata))

    def _upload(self, collection: str, vectors: np.ndarray, table: ProductTable) -> None:
        payloads = [
            {"id": str(table.ids[i]), "category": table.categories[table.category_codes[i]],
             "brand": table.brands[table.brand_codes[i]], "price": float(table.prices[i])}
            for i in range(len(table))
        ]
        self.client.upload_collection(
            collection, vectors=vectors, payload=payloads, ids=[point_id(p["id"]) for p in payloads],
            batch_size=self.batch_size, wait=True,
        )

    def _serving_collection(self) -> str | None:
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.alias:
                return alias.collection_name
        return None

    def _swap_alias(self, physical: str) -> None:
        from qdrant_client import models

        previous = self._serving_collection()
        if previous is None and self.client.collection_exists(self.alias):
            self.client.delete_collection(self.alias)  # a plain collection squatting on the alias name
        ops: list[Any] = []
        if previous is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=physical, alias_name=self.alias)))
        self.client.update_collection_aliases(change_aliases_operations=ops)  # one atomic request
        self._drop_superseded(physical)

    def _drop_superseded(self, serving: str) -> None:
        prefix = f"{self.alias}-v"
        olds = sorted((c.name for c in self.client.get_collections().collections
                       if c.name.startswith(prefix) and c.name != serving), reverse=True)
        for name in olds[self.keep_old:]:
            self.client.delete_collection(name)

    # -- reading --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.client.count(self.alias, exact=True).count)

    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
        exact: bool = False,
        ef_search: int | None = None,
    ) -> list[Hit]:
        """Top-k by cosine similarity with payload filters applied inside Qdrant's HNSW walk."""
        from qdrant_client import models

        q = normalise_rows(np.asarray(query).reshape(-1))
        # Local mode is always exact and warns about search params; a server uses them.
        params = models.SearchParams(hnsw_ef=ef_search or self.hnsw.ef_search, exact=exact) if self.is_remote else None
        response = self.client.query_points(
            self.alias, query=q.tolist(), query_filter=payload_filter(category, brand, price_min, price_max),
            search_params=params, limit=k, with_payload=True,
        )
        return [
            Hit(id=p.payload["id"], score=float(p.score), category=p.payload["category"],
                brand=p.payload["brand"], price=float(p.payload["price"]))
            for p in response.points
        ]

    def close(self) -> None:
        self.client.close()
