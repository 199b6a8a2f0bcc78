"""The Catalog facade on real index versions: fused scores, filters, text, refresh, evaluation."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sketch2fashion.catalog.colour import colour_similarity, garment_mask_from_photo, lab_histogram
from sketch2fashion.catalog.embedder import ImageEncoder, embed_images, save_encoder
from sketch2fashion.catalog.evaluation import ShopperQuery, evaluate_search, kind_weights, rank_metrics, rank_of
from sketch2fashion.catalog.features import FeatureLayout, QueryParts, query_vector
from sketch2fashion.catalog.index import POINTER_NAME
from sketch2fashion.catalog.search import DEFAULT_WEIGHTS, Catalog, CatalogItem, build_catalog_index
from sketch2fashion.catalog.weight_tuning import (
    choose_weights, ranks_for, signal_scores, weight_grid,
)
from sketch2fashion.catalog.tuned_weights import read_tuned_weights, write_tuned_weights
from sketch2fashion.imaging.hints import Hints
from sketch2fashion.imaging.io import save_png

COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (40, 160, 60), "yellow": (230, 200, 40),
           "black": (20, 20, 20), "pink": (240, 130, 180)}
BINS = (4, 8, 8)


def garment(category: str, colour: tuple[int, int, int], variant: int, size: int = 64) -> np.ndarray:
    """A flat-coloured garment on white: a box for tops, two legs for pants, a circle for hats."""
    img = np.full((size, size, 3), 255, np.uint8)
    pad = 8 + variant
    if category == "top":
        cv2.rectangle(img, (pad, pad), (size - pad, size - pad), colour, -1)
    elif category == "pants":
        cv2.rectangle(img, (pad, pad), (size // 2 - 2, size - 4), colour, -1)
        cv2.rectangle(img, (size // 2 + 2, pad), (size - pad, size - 4), colour, -1)
    else:
        cv2.circle(img, (size // 2, size // 2), size // 2 - pad, colour, -1)
    return img


def params_for(tmp_path, **search) -> dict:
    return {"catalog": {"index": str(tmp_path / "index")},
            "search": {"colour": {"bins": list(BINS)}, "candidates": 50, **search}}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """18 products (3 categories x 6 colours), an untrained but fixed encoder, one published version."""
    tmp_path = tmp_path_factory.mktemp("shop")
    items = []
    for category in ("top", "pants", "hat"):
        for i, (name, rgb) in enumerate(COLOURS.items()):
            path = tmp_path / "photos" / f"{category}-{name}.png"
            save_png(path, garment(category, rgb, i % 3))
            items.append(CatalogItem(id=f"{category}-{name}", title=f"{name.title()} {category}",
                                     link=f"https://shop.example/{category}-{name}", image_link=str(path),
                                     price=10.0 + i, currency="EUR", brand="Acme" if i % 2 else "Zed",
                                     category=category, image_path=path, color=name))
    torch_seed = 0
    import torch

    torch.manual_seed(torch_seed)
    encoder_path = tmp_path / "embedder.pt"
    save_encoder(encoder_path, ImageEncoder(dim=16, image_size=32, width=8))
    params = params_for(tmp_path)
    version = build_catalog_index(params, project_root=tmp_path, items=items, encoder_path=encoder_path, progress=False)
    return tmp_path, params, items, version


def test_published_version_carries_encoder_cards_and_layout(shop):
    tmp_path, params, items, version = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    assert catalog.version == version and len(catalog) == len(items)
    assert catalog.layout == FeatureLayout(16, BINS)
    card = catalog.card("top-red")
    assert card["title"] == "Red top" and card["colours"][0][0] == "red"


def test_colour_only_query_finds_the_same_colour_within_the_category(shop):
    tmp_path, params, _, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    photo = garment("top", COLOURS["blue"], 2)
    for category in ("top", "pants", "hat"):
        hits = catalog.search(photo=photo, category=category, top_k=3, weights=kind_weights("photo", {}) | {"photo": 0.0, "photo_colour": 1.0})
        assert hits[0].id == f"{category}-blue"
        assert all(h.category == category for h in hits)


def test_category_filter_never_returns_another_category(shop):
    tmp_path, params, _, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    photo = garment("pants", COLOURS["green"], 0)
    for category in ("top", "pants", "hat", "skirt"):
        hits = catalog.search(photo=photo, text="green pants", category=category, top_k=100)
        assert all(h.category == category for h in hits)
        assert (len(hits) == 6) == (category != "skirt")


def test_fused_score_is_the_weighted_sum_of_cosine_and_bhattacharyya(shop):
    """The single inner-product search must equal the documented formula, term by term."""
    tmp_path, params, items, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    photo = garment("hat", COLOURS["pink"], 1)
    sketch = np.full((64, 64, 3), 255, np.uint8)
    cv2.circle(sketch, (32, 32), 20, (0, 0, 0), 1)
    sketch[30:34, 30:34] = COLOURS["pink"]
    weights = {"sketch": 0.7, "photo": 0.4, "hint_colour": 1.3, "photo_colour": 0.2, "text": 0.0, "colour_words": 0.0}
    hits = catalog.search(photo=photo, sketch=sketch, category="hat", top_k=6, weights=weights)
    snapshot_encoder = catalog._current().encoder
    e_sketch, e_photo = embed_images(snapshot_encoder, [sketch, photo])
    hint_mask = np.zeros((64, 64), np.uint8)
    hint_mask[30:34, 30:34] = 1
    h_hint = lab_histogram(sketch, hint_mask, BINS)
    h_photo = lab_histogram(photo, garment_mask_from_photo(photo), BINS)
    by_id = {item.id: item for item in items}
    for hit in hits:
        product = cv2.cvtColor(cv2.imread(str(by_id[hit.id].image_path)), cv2.COLOR_BGR2RGB)
        e_product = embed_images(snapshot_encoder, [product])[0]
        h_product = lab_histogram(product, garment_mask_from_photo(product), BINS)
        expected = (0.7 * e_sketch @ e_product + 0.4 * e_photo @ e_product
                    + 1.3 * colour_similarity(h_hint, h_product) + 0.2 * colour_similarity(h_photo, h_product))
        assert hit.score == pytest.approx(expected, abs=2e-3), hit.id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hints_split_by_the_api_answer_as_the_drawing_does(shop):
    """The API sends the colours of the hints it split for the colorizer (at the model's size) so
    the Catalog does not split the drawing again: the answer must be the drawing's own, and a
    drawing without colour must not gain a colour signal on the way."""
    from sketch2fashion.serving.catalog import hints_of_pixels
    from sketch2fashion.serving.sketches import prepare_sketch

    tmp_path, params, _, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    drawing = np.full((128, 128, 3), 255, np.uint8)
    cv2.circle(drawing, (64, 64), 40, (0, 0, 0), 2)
    plain = drawing.copy()
    drawing[56:72, 56:72] = COLOURS["green"]
    weights = {"sketch": 0.0, "photo": 0.0, "hint_colour": 1.0, "photo_colour": 0.0}
    for sketch, colour_expected in ((drawing, True), (plain, False)):
        hints = hints_of_pixels(prepare_sketch(sketch, 64).hint_pixels)
        assert bool(hints.hinted.any()) is colour_expected
        own = catalog.search(sketch=sketch, top_k=6, weights=weights)
        split = catalog.search_versioned(sketch=sketch, hints=hints, top_k=6, weights=weights)[1]
        assert [(h.id, round(h.score, 4)) for h in split] == [(h.id, round(h.score, 4)) for h in own]
    assert own == []  # no colour drawn, only the colour signal weighted: nothing to rank by
    assert catalog.search(sketch=drawing, top_k=1, weights=weights)[0].id.endswith("green")
    with pytest.raises(ValueError, match="hint pixels"):
        hints_of_pixels(np.zeros((3, 8, 8), np.uint8))


def test_words_rerank_and_text_alone_searches(shop):
    tmp_path, params, _, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    hits = catalog.search(text="yellow", category="top", top_k=3)
    assert hits[0].id == "top-yellow"
    photo = garment("top", COLOURS["red"], 0)
    plain = catalog.search(photo=photo, category="top", top_k=6)
    worded = catalog.search(photo=photo, text="black", category="top", top_k=6,
                            weights={"text": 5.0, "colour_words": 5.0})
    assert plain[0].id == "top-red"
    assert worded[0].id == "top-black"


def test_query_without_any_signal_returns_nothing():
    layout = FeatureLayout(4, (1, 2, 2))
    assert query_vector(layout, QueryParts(), {"sketch": 1.0}) is None
    assert query_vector(layout, QueryParts(sketch=np.ones(4, np.float32)), {"sketch": 0.0}) is None


def test_refresh_swaps_versions_and_keeps_serving_over_a_broken_one(shop, tmp_path):
    src, _, items, _ = shop
    params = params_for(tmp_path)
    encoder = src / "embedder.pt"
    build_catalog_index(params, project_root=tmp_path, items=items, encoder_path=encoder, progress=False)
    catalog = Catalog.open(params, project_root=tmp_path)
    first = catalog.version
    second = build_catalog_index(params, project_root=tmp_path, items=[i for i in items if i.id != "top-red"],
                                 encoder_path=encoder, progress=False)
    assert catalog.search(text="red", category="top", top_k=1)[0].id == "top-red"  # old until refreshed
    assert catalog.refresh() and catalog.version == second != first
    assert all(h.id != "top-red" for h in catalog.search(text="red", category="top", top_k=10))
    (tmp_path / "index" / POINTER_NAME).write_text("v-does-not-exist")
    assert catalog.refresh()  # still serving
    assert catalog.version == second and catalog.search(text="blue", category="top", top_k=1)


def test_open_without_an_index_names_the_fix(tmp_path):
    with pytest.raises(Exception, match="dvc repro index"):
        Catalog.open(params_for(tmp_path), project_root=tmp_path)


def test_rank_metrics():
    metrics = rank_metrics([1, 2, 11, None])
    assert metrics == {"acc@1": 0.25, "acc@10": 0.5, "mrr": pytest.approx((1 + 0.5 + 1 / 11) / 4), "n": 4}


def test_evaluation_with_a_perfect_generator_ranks_the_product_first(shop):
    """The machinery: given each product's own photo as the 'generated' one, photo queries hit at rank 1."""
    tmp_path, params, items, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    photos = {i.id: cv2.cvtColor(cv2.imread(str(i.image_path)), cv2.COLOR_BGR2RGB) for i in items}
    queries = []
    for item in items:
        edges = np.where(cv2.Canny(photos[item.id], 50, 150) > 0, 0, 255).astype(np.uint8)
        mask = np.zeros(edges.shape, np.uint8)
        rgb = np.zeros((*edges.shape, 3), np.uint8)
        mask[32, 32] = 1
        rgb[32, 32] = photos[item.id][32, 32]
        queries.append(ShopperQuery(item.id, item.category, edges, Hints(rgb, mask)))
    report = evaluate_search(catalog, queries, None, kinds=("colour", "photo"))
    assert set(report) >= {"colour", "index", "latency_ms", "n_queries"} and "photo" not in report
    by_id = {q.product_id: q for q in queries}
    perfect = evaluate_search(catalog, queries, lambda cat, e, h: photos[_owner(by_id, e)], kinds=("photo", "fused"))
    assert perfect["photo"]["acc@1"] == 1.0
    assert perfect["index"]["recall@10"] == 1.0
    json.dumps(perfect)  # the report is plain JSON


def _owner(by_id, edges):
    return next(pid for pid, q in by_id.items() if q.edges is edges)


# -- per-deployment weights (catalog/weight_tuning.py, the tune_search stage) --------------------------
def _shoppers(shop, photo_for):
    """Each product as a shopper: a one-pixel hint of its colour, its outline, and `photo_for(item)`."""
    tmp_path, params, items, _ = shop
    catalog = Catalog.open(params, project_root=tmp_path)
    shoppers = []
    for item in items:
        photo = cv2.cvtColor(cv2.imread(str(item.image_path)), cv2.COLOR_BGR2RGB)
        edges = np.where(cv2.Canny(photo, 50, 150) > 0, 0, 255).astype(np.uint8)
        mask, rgb = np.zeros(edges.shape, np.uint8), np.zeros((*edges.shape, 3), np.uint8)
        mask[32, 32], rgb[32, 32] = 1, photo[32, 32]
        query = ShopperQuery(item.id, item.category, edges, Hints(rgb, mask))
        shoppers.append((query, catalog.encode(photo=photo_for(item, photo), sketch=query.sketch)))
    return catalog, shoppers


def test_grid_ranks_are_the_served_search_ranks(shop):
    """Scoring weight sets from per-signal scores ranks every product as the served search does."""
    catalog, shoppers = _shoppers(shop, lambda item, photo: photo[::-1].copy())
    blank = Hints(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8))
    hintless = ShopperQuery(shoppers[0][0].product_id, shoppers[0][0].category, shoppers[0][0].edges, blank)
    shoppers.append((hintless, catalog.encode(sketch=hintless.sketch)))  # no hint colour, no photo
    scored = [signal_scores(catalog, parts, q.category, q.product_id) for q, parts in shoppers]
    for weights in ({"sketch": 0.5, "photo": 2.0, "hint_colour": 1.0, "photo_colour": 0.25}, {"hint_colour": 1.0},
                    {"sketch": 1.0, "photo": 1.0}):
        weights = {s: weights.get(s, 0.0) for s in ("sketch", "photo", "hint_colour", "photo_colour")}
        served = [rank_of(q.product_id, [h.id for h in catalog.search_parts(
            parts, category=q.category, top_k=len(catalog), weights={**weights, "text": 0.0})]) for q, parts in shoppers]
        assert ranks_for(weights, scored) == served
    assert ranks_for({"hint_colour": 1.0}, scored)[-1] is None  # colour alone cannot rank a hintless drawing


def test_tuner_stops_trusting_a_photo_that_points_elsewhere(shop):
    """A colorizer whose photos show another product's colour: the chosen weights give the photo
    no say, and the choice is at least as good as every single signal on the same shoppers."""
    _, _, items, _ = shop
    others = {item.id: items[(i + 1) % len(items)] for i, item in enumerate(items)}
    wrong = lambda item, photo: cv2.cvtColor(cv2.imread(str(others[item.id].image_path)), cv2.COLOR_BGR2RGB)  # noqa: E731
    catalog, shoppers = _shoppers(shop, wrong)
    scored = [signal_scores(catalog, parts, q.category, q.product_id) for q, parts in shoppers]
    grid = {"sketch": [0.0, 1.0], "photo": [0.0, 1.0, 2.0], "hint_colour": [0.0, 1.0], "photo_colour": [0.0, 1.0]}
    best, table = choose_weights(scored, weight_grid(grid))
    assert best["photo"] == 0.0 and best["photo_colour"] == 0.0 and best["hint_colour"] > 0
    chosen = rank_metrics(ranks_for(best, scored))
    for signal in ("sketch", "photo", "hint_colour", "photo_colour"):
        alone = rank_metrics(ranks_for({signal: 1.0}, scored))
        assert chosen["mrr"] >= alone["mrr"]
    right, _ = choose_weights([signal_scores(catalog, parts, q.category, q.product_id)
                               for q, parts in _shoppers(shop, lambda item, photo: photo)[1]], weight_grid(grid))
    assert right["photo"] > 0 or right["photo_colour"] > 0  # the same grid trusts a photo that is right


def test_service_reads_tuned_weights_and_picks_up_new_ones(shop, tmp_path):
    shop_path, params, _, _ = shop
    tuned_path = tmp_path / "search_weights.yaml"
    params = {**params, "search": {**params["search"], "tuned_weights": str(tuned_path)}}
    catalog = Catalog.open(params, project_root=shop_path)
    assert catalog.settings.weights["photo"] == DEFAULT_WEIGHTS["photo"]  # no file yet: params apply
    write_tuned_weights(tuned_path, {"sketch": 1.0, "photo": 0.0, "hint_colour": 2.0, "photo_colour": 0.5}, {"queries": 3})
    assert read_tuned_weights(tuned_path)["hint_colour"] == 2.0
    catalog.refresh()
    assert catalog.settings.weights["photo"] == 0.0 and catalog.settings.weights["hint_colour"] == 2.0
    assert catalog.settings.weights["text"] == DEFAULT_WEIGHTS["text"]  # words are not tuned
    tuned_path.write_text("weights: [broken")
    catalog.refresh()  # a broken file keeps the weights in use, and says so in the log
    assert catalog.settings.weights["hint_colour"] == 2.0
    with pytest.raises(ValueError, match="search_weights.yaml"):
        Catalog.open(params, project_root=shop_path)
