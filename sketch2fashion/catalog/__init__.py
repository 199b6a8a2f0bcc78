"""The shop product catalog: feed ingest, the product store, and what is built on top of them."""
