"""Search signals: the shared sketch/photo encoder, colour descriptors, BM25 and score fusion."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sketch2fashion.catalog.colour import (
    NAMED_COLOURS, colour_similarity, dominant_colours, garment_mask_from_photo, lab_histogram,
)
from sketch2fashion.catalog.embedder import (
    ImageEncoder, embed_images, load_encoder, prepare_image, save_encoder,
)
from sketch2fashion.catalog.embedder_training import (
    ContrastiveLoss, evaluate_retrieval, retrieval_metrics, train_embedder,
)
from sketch2fashion.catalog.text import (
    COLOUR_FAMILIES, COLOUR_SYNONYMS, TextIndex, colour_word_match, colour_words, fuse_scores,
    tokenise,
)
from sketch2fashion.data.manifest import write_manifest
from sketch2fashion.demo import CATEGORIES, render_garment, sample_spec
from sketch2fashion.demo.garments import GarmentSpec
from sketch2fashion.imaging.edges import sketch_edges

SIZE = 64       # encoder input side in these tests: small enough for a busy 2-core CPU
DIM = 32
WIDTH = 16


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny convolutions on a shared CPU run ~50x faster on one thread than fighting for two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 demo garments laid out like the pipeline's data folder (manifest, raw, masks, edges)."""
    root = tmp_path_factory.mktemp("catalog-data")
    rows = []
    for i in range(16):
        category = CATEGORIES[i % len(CATEGORIES)]
        rgb, mask = render_garment(sample_spec(category, np.random.default_rng([7, i])), 128)
        pid = f"demo-{category}-{i:04d}"
        _write_png(root / "raw" / category / f"{pid}.png", rgb)
        _write_png(root / "masks" / category / f"{pid}.png", mask)
        _write_png(root / "edges" / category / f"{pid}.png", sketch_edges(rgb, mask))
        rows.append({"id": pid, "category": category, "image": f"raw/{category}/{pid}.png",
                     "mask": f"masks/{category}/{pid}.png", "isolation": "ok", "split": "train"})
    write_manifest(root / "manifest.csv", rows)
    return root


def _solid(colour: str, category: str = "top", seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return render_garment(GarmentSpec(category=category, color=colour, detail_seed=seed), 128)


def _untrained(seed: int = 0) -> ImageEncoder:
    """The encoder `train_embedder` starts from with this seed (same init, no steps)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ImageEncoder(DIM, image_size=SIZE, width=WIDTH).eval()


# --- encoder -------------------------------------------------------------------------------------

def test_encoder_output_is_unit_vectors_of_dim() -> None:
    encoder = _untrained()
    out = encoder(torch.rand(3, 3, SIZE, SIZE) * 2 - 1)
    assert out.shape == (3, DIM)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_prepare_image_pads_on_white_and_scales_to_minus_one_one() -> None:
    tall_grey = np.zeros((40, 20), np.uint8)  # black, taller than wide
    tensor = prepare_image(tall_grey, 32)
    assert tensor.shape == (3, 32, 32)
    assert tensor[:, :, 0].min() == 1.0          # white padding at the sides
    assert tensor[:, 16, 16].max() == -1.0       # the black image in the middle


def test_embed_images_is_deterministic_and_batch_independent() -> None:
    encoder = _untrained()
    images = [_solid(c)[0] for c in ("red", "navy", "olive")]
    first = embed_images(encoder, images, batch_size=3)
    again = embed_images(encoder, images, batch_size=1)
    assert first.dtype == np.float32 and first.shape == (3, DIM)
    np.testing.assert_allclose(first, again, atol=1e-5)
    np.testing.assert_array_equal(first, embed_images(encoder, images, batch_size=3))


def test_infonce_loss_decreases_on_a_tiny_batch() -> None:
    encoder = _untrained()
    encoder.train()
    loss_fn = ContrastiveLoss(temperature=0.1)
    photos = torch.stack([prepare_image(_solid(c, cat)[0], SIZE) for c, cat in
                          (("red", "top"), ("navy", "pants"), ("olive", "skirt"), ("pink", "hat"))])
    mirrored = photos.flip(3)
    optimiser = torch.optim.Adam([*encoder.parameters(), *loss_fn.parameters()], lr=3e-3)
    losses = []
    for _ in range(12):
        loss = loss_fn(encoder(photos), encoder(mirrored))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_retrieval_metrics_perfect_and_chance() -> None:
    eye = np.eye(4, dtype=np.float32)
    assert retrieval_metrics(eye, eye) == {"sketch_to_photo_acc@1": 1.0, "acc@10": 1.0, "mrr": 1.0}
    constant = np.ones((4, 2), np.float32) / np.sqrt(2)
    assert retrieval_metrics(constant, constant)["sketch_to_photo_acc@1"] == 0.0  # ties count against


def test_training_improves_sketch_to_photo_retrieval(demo_data: Path) -> None:
    before = evaluate_retrieval(_untrained(), demo_data, split="train")
    logged: list[dict[str, float]] = []
    # One batch of all 16 (15 negatives each); measured over seeds 0-2: acc@1 0.06-0.13 before,
    # 0.44-0.63 after, MRR +0.33 to +0.54.
    encoder, history = train_embedder(demo_data, epochs=40, batch_size=16, dim=DIM, size=SIZE,
                                      width=WIDTH, lr=3e-3, seed=0, log=logged.append)
    after = evaluate_retrieval(encoder, demo_data, split="train")
    assert len(history) == 40 and logged == history
    assert np.mean([h["loss"] for h in history[-5:]]) < np.mean([h["loss"] for h in history[:5]])
    assert after["sketch_to_photo_acc@1"] > before["sketch_to_photo_acc@1"] + 0.2
    assert after["mrr"] > before["mrr"] + 0.2


def test_training_is_deterministic_by_seed(demo_data: Path, tmp_path: Path) -> None:
    runs = [train_embedder(demo_data, epochs=1, batch_size=8, dim=DIM, size=SIZE, width=WIDTH,
                           seed=5)[0] for _ in range(2)]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)
    save_encoder(tmp_path / "encoder.pt", runs[0], {"epochs": 1})
    reloaded = load_encoder(tmp_path / "encoder.pt")
    image = [_solid("teal")[0]]
    np.testing.assert_array_equal(embed_images(runs[0], image), embed_images(reloaded, image))


# --- colour --------------------------------------------------------------------------------------

def test_lab_histogram_is_normalised() -> None:
    rgb, mask = _solid("red")
    assert lab_histogram(rgb, mask).sum() == pytest.approx(1.0, abs=1e-5)
    assert lab_histogram(rgb, mask).shape == (8 * 12 * 12,)
    assert np.linalg.norm(lab_histogram(rgb, mask, norm="l2")) == pytest.approx(1.0, abs=1e-5)


def test_red_garment_histogram_is_closer_to_red_than_to_blue() -> None:
    red_top, red_skirt, blue_top = _solid("red", "top"), _solid("red", "skirt", 9), _solid("blue", "top")
    h_red, h_red2, h_blue = (lab_histogram(rgb, garment_mask_from_photo(rgb))
                             for rgb, _ in (red_top, red_skirt, blue_top))
    for method in ("hellinger", "intersection"):
        assert colour_similarity(h_red, h_red2, method) > colour_similarity(h_red, h_blue, method) + 0.3
    batch = colour_similarity(h_red, np.stack([h_red2, h_blue]))
    assert batch.shape == (2,) and batch[0] > batch[1]


@pytest.mark.parametrize("colour", ["red", "navy", "olive", "yellow", "sky blue", "burgundy",
                                    "black", "cream", "teal", "pale pink"])
def test_dominant_colour_names_a_solid_garment(colour: str) -> None:
    rgb, mask = _solid(colour, "pants")
    assert dominant_colours(rgb, mask)[0][0] == colour
    assert dominant_colours(rgb, garment_mask_from_photo(rgb))[0][0] == colour


def test_garment_mask_from_photo_finds_the_garment() -> None:
    rgb, truth = _solid("green", "skirt")
    found = garment_mask_from_photo(rgb) > 0
    iou = np.count_nonzero(found & (truth > 0)) / np.count_nonzero(found | (truth > 0))
    assert iou > 0.85
    blank = np.full((32, 32, 3), 255, np.uint8)
    assert garment_mask_from_photo(blank).all()  # nothing found: describe the whole frame


# --- text ----------------------------------------------------------------------------------------

def test_tokenise_strips_plurals() -> None:
    assert tokenise("Long-sleeve TOPS, dresses & trousers") == ["long", "sleeve", "top", "dress", "trouser"]


def test_bm25_ranks_the_matching_title_first() -> None:
    docs = {"a": "Red striped long-sleeve V-neck top", "b": "Navy wide-leg cropped trousers",
            "c": "Red mini A-line skirt", "d": "Cream beanie with pompom"}
    index = TextIndex(docs)
    scores = index.scores("red trouser")
    assert scores.shape == (4,) and index.ids[int(np.argmax(index.scores("wide trousers")))] == "b"
    assert index.ids[int(np.argmax(index.scores("red skirts")))] == "c"
    assert scores[index.ids.index("d")] == 0.0
    assert not index.scores("velvet").any()


def test_colour_words_parses_synonyms() -> None:
    assert colour_words("long red trouser") == ["red"]
    assert colour_words("dark blue jeans") == ["navy"]
    assert colour_words("grey or gray hoodie") == ["gray"]
    assert colour_words("Off-white linen shirt, ivory buttons") == ["cream", "ivory"]
    assert colour_words("charcoal and crimson") == ["dark gray", "red"]
    assert colour_words("wide-leg trousers") == []


def test_colour_vocabulary_matches_the_named_palette() -> None:
    assert set(COLOUR_SYNONYMS) == set(NAMED_COLOURS) == set(COLOUR_FAMILIES)


def test_colour_word_match_uses_measured_colours_not_titles() -> None:
    crimson_top = dominant_colours(*_solid("red"))  # its title may say "crimson"
    assert colour_word_match(colour_words("red top"), crimson_top) == 1.0
    assert colour_word_match(colour_words("blue top"), crimson_top) == 0.0
    assert colour_word_match(["blue"], [("navy", 0.9)]) == pytest.approx(0.5)
    assert colour_word_match(["red", "blue"], [("red", 0.6), ("blue", 0.4)]) == 1.0
    assert colour_word_match(["red", "blue"], [("red", 1.0)]) == 0.5
    assert colour_word_match([], crimson_top) == 0.0


def test_fuse_scores_respects_weights() -> None:
    image = np.array([3.0, 2.0, 1.0])
    text = np.array([0.0, 5.0, 10.0])
    assert np.argmax(fuse_scores({"image": image, "text": text}, {"image": 1.0, "text": 0.2})) == 0
    assert np.argmax(fuse_scores({"image": image, "text": text}, {"image": 0.2, "text": 1.0})) == 2
    only_image = fuse_scores({"image": image, "text": text}, {"image": 1.0, "text": 0.0})
    np.testing.assert_allclose(only_image, (image - image.mean()) / image.std(), atol=1e-6)
    ranked = fuse_scores({"image": image * 100, "text": text}, {"image": 1.0, "text": 1.0}, "rank")
    np.testing.assert_allclose(ranked, [1.0, 1.0, 1.0])
    assert fuse_scores({"image": image}, {"image": 1.0, "colour": 0.5}).shape == (3,)
    with pytest.raises(ValueError):
        fuse_scores({"image": image, "txet": text}, {"image": 1.0, "text": 1.0})
