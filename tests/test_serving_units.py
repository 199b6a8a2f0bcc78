"""Serving building blocks without a server: config, request checks, sketch preparation, probe, batching."""
from __future__ import annotations

import asyncio

import cv2
import numpy as np
import prometheus_client
import pytest
import torch
from starlette.requests import Request

from serving_fixtures import bomb_png, sketch_png
from sketch2fashion.params import ParamsError, load_params
from sketch2fashion.serving import metrics
from sketch2fashion.serving.batching import colorize_jobs
from sketch2fashion.serving.champions import Champion, ModelRefused, probe
from sketch2fashion.serving.config import Limits, ServingConfig
from sketch2fashion.serving.requests import (
    BadRequest, decode_image, parse_category, parse_photo_format, parse_text, parse_top_k, read_form,
)
from sketch2fashion.serving.sketches import (
    count_marks, encode_photo, encode_photo_png, prepare_sketch, probe_sketch,
)

LIMITS = Limits(max_body_bytes=1000, max_pixels=1_000_000, min_side=16, max_side=256, max_text_chars=10,
                max_top_k=100, default_top_k=7)


def test_repo_params_serving_section_loads(project_root):
    config = ServingConfig.from_params(load_params(project_root / "params.yaml"), project_root)
    assert config.categories and config.image_size > 0 and config.poll_seconds > 0
    assert config.max_batch_size >= 1 and config.limits.max_top_k == 100


def repo_params(project_root, **serving) -> dict:
    """The repository's params with `serving` keys replaced (None removes one)."""
    params = load_params(project_root / "params.yaml")
    for key, value in serving.items():
        if value is None:
            params["serving"].pop(key)
        else:
            params["serving"][key] = value
    return params


def test_config_refuses_unknown_or_missing_keys_and_bad_values(tmp_path, project_root):
    def config(**serving):
        return ServingConfig.from_params(repo_params(project_root, **serving), tmp_path)

    with pytest.raises(ParamsError, match="unknown key"):
        config(limits={**load_params(project_root / "params.yaml")["serving"]["limits"], "max_bytes": 1})
    with pytest.raises(ParamsError, match="unknown key"):
        config(classifier="models/classifier.pt")  # category=auto follows the registry now
    with pytest.raises(ParamsError, match="missing serving.poll_seconds"):
        config(poll_seconds=None)
    with pytest.raises(ParamsError, match="cannot be a category"):
        ServingConfig.from_params({**load_params(project_root / "params.yaml"), "categories": ["top", "auto"]}, tmp_path)
    with pytest.raises(ParamsError, match="model_source"):
        config(model_source="s3")
    with pytest.raises(ParamsError, match="keep_freed_memory must be true or false"):
        config(keep_freed_memory="no")
    assert not config(keep_freed_memory=False).keep_freed_memory
    with pytest.raises(ParamsError, match="serving.colorizer must be one of"):
        config(colorizer="gpu")
    assert config(colorizer="inline").colorizer == "inline"
    with pytest.raises(ParamsError, match="photo_format must be one of"):
        config(photo_format="webp")
    with pytest.raises(ParamsError, match="jpeg_quality must be 1..100"):
        config(jpeg_quality=0)


def test_field_parsers():
    assert parse_top_k(None, LIMITS) == 7 and parse_top_k(" 100 ", LIMITS) == 100
    for bad in ("0", "101", "-3", "1e3", "x"):
        with pytest.raises(BadRequest):
            parse_top_k(bad, LIMITS)
    assert parse_category(" Top ", ["top", "hat"], allow_auto=False, required=True) == "top"
    assert parse_category("auto", ["top"], allow_auto=True, required=True) == "auto"
    assert parse_category("", ["top"], allow_auto=False, required=False) is None
    with pytest.raises(BadRequest, match="expected one of top, hat, auto"):
        parse_category("dress", ["top", "hat"], allow_auto=True, required=True)
    with pytest.raises(BadRequest, match="auto"):
        parse_category("auto", ["top"], allow_auto=False, required=True)
    assert parse_text("red\n dress", LIMITS) == "red dress" and parse_text("   ", LIMITS) is None
    with pytest.raises(BadRequest, match="at most 10"):
        parse_text("x" * 11, LIMITS)
    formats = ("jpeg", "png")
    assert parse_photo_format(None, "png", formats) == "png" and parse_photo_format(" ", "jpeg", formats) == "jpeg"
    assert parse_photo_format("JPG", "png", formats) == "jpeg" and parse_photo_format("png", "jpeg", formats) == "png"
    with pytest.raises(BadRequest, match="unknown format 'tiff'; expected one of jpeg, png"):
        parse_photo_format("tiff", "png", formats)


def test_decode_image_refuses_bombs_before_decoding_and_shrinks_big_uploads():
    with pytest.raises(BadRequest) as bomb:
        decode_image(bomb_png(30000), "sketch", LIMITS)
    assert bomb.value.status == 413 and "too large" in bomb.value.message and "900000000" in bomb.value.message
    for data, words in ((b"", "empty"), (b"GIF89a-nope", "sketch"), (sketch_png()[:300], "truncated")):
        with pytest.raises(BadRequest, match=words) as err:
            decode_image(data, "sketch", LIMITS)
        assert err.value.status == 400
    assert decode_image(sketch_png(512), "sketch", LIMITS).shape == (256, 256, 3)


def _request(body: bytes, content_type: str) -> Request:
    chunks = [body[i:i + 300] for i in range(0, len(body), 300)] or [b""]

    async def receive() -> dict:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    headers = [(b"content-type", content_type.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


def test_read_form_limits_body_and_fields():
    boundary = "b0undary"

    def multipart(*parts: tuple[str, bytes, str | None]) -> bytes:
        out = b""
        for name, data, filename in parts:
            disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
        return out + f"--{boundary}--\r\n".encode()

    ctype = f"multipart/form-data; boundary={boundary}"
    form = asyncio.run(read_form(_request(multipart(("sketch", b"abc", "s.png"), ("category", b"top", None)), ctype),
                                 files={"sketch"}, texts={"category"}, limits=LIMITS))
    assert form.files == {"sketch": b"abc"} and form.texts == {"category": "top"}
    cases = [
        (multipart(("sketch", b"x" * 2000, "s.png")), 413, "limit is 1000 bytes"),
        (multipart(("sketch", b"abc", None)), 400, "uploaded file"),
        (multipart(("sketch", b"a", "a.png"), ("sketch", b"b", "b.png")), 400, "once"),
        (multipart(("skecth", b"a", "a.png")), 400, "unknown form field"),
    ]
    for body, status, words in cases:
        with pytest.raises(BadRequest, match=words) as err:
            asyncio.run(read_form(_request(body, ctype), files={"sketch"}, texts={"category"}, limits=LIMITS))
        assert err.value.status == status, words
    with pytest.raises(BadRequest) as err:
        asyncio.run(read_form(_request(b"{}", "application/json"), files={"sketch"}, texts=set(), limits=LIMITS))
    assert err.value.status == 415


def test_prepare_sketch_packs_lines_hints_and_their_fill_and_counts_hint_marks():
    prepared = prepare_sketch(decode_image(sketch_png(200, hints=3), "sketch", LIMITS), 64)
    packed = prepared.packed
    assert packed.shape == (9, 64, 64) and packed.dtype == np.uint8
    assert prepared.hints == 3 and (packed[4] > 0).any() and (packed[0] < 128).any()  # hints and lines
    assert (packed[8] > 0).sum() > 4 * (packed[4] > 0).sum()  # the hints' colour spread over the garment
    assert prepared.open_ends.shape[1] == 2 and ((prepared.open_ends >= 0) & (prepared.open_ends <= 1)).all()
    assert count_marks(np.zeros((8, 8), np.uint8)) == 0


def test_prepare_sketch_reports_where_an_open_outline_lets_colour_out():
    page = np.full((200, 200, 3), 255, np.uint8)
    cv2.polylines(page, [np.array([(60, 20), (20, 180), (180, 180), (140, 20)])], False, (0, 0, 0), 3)  # no top
    cv2.circle(page, (100, 120), 6, (220, 30, 30), -1)
    prepared = prepare_sketch(page, 64)
    assert len(prepared.open_ends) == 2  # the two ends of the open top
    assert (prepared.open_ends[:, 1] < 0.2).all()
    cv2.line(page, (60, 20), (140, 20), (0, 0, 0), 3)  # closed: no warning
    assert len(prepare_sketch(page, 64).open_ends) == 0


@pytest.mark.parametrize("compression", [0, 1, 6, 9])
@pytest.mark.parametrize("strategy", [cv2.IMWRITE_PNG_STRATEGY_RLE, cv2.IMWRITE_PNG_STRATEGY_DEFAULT])
def test_photo_png_decodes_to_the_same_rgb_pixels(compression, strategy):
    rng = np.random.default_rng(compression)
    photo = np.clip(cv2.GaussianBlur(rng.integers(0, 256, (64, 48, 3)).astype(np.float32), (0, 0), 2)
                    + rng.normal(0, 3, (64, 48, 3)), 0, 255).astype(np.uint8)
    photo[:8] = (250, 10, 20)  # a flat red band: R and B must not swap
    for image in (photo, photo[::2, ::-1]):  # a non-contiguous view too
        png = encode_photo_png(image, compression, strategy)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded.dtype == np.uint8 and np.array_equal(decoded[..., ::-1], image)


def test_photo_jpeg_keeps_the_colours_and_is_far_smaller_than_png():
    rng = np.random.default_rng(0)
    photo = np.clip(cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3)).astype(np.float32), (0, 0), 2)
                    + rng.normal(0, 3, (64, 64, 3)), 0, 255).astype(np.uint8)
    photo[:16] = (250, 10, 20)  # a flat red band: R and B must not swap
    jpeg = encode_photo(photo, "jpeg", jpeg_quality=92)
    png = encode_photo(photo, "png", png_compression=1)
    assert jpeg[:3] == b"\xff\xd8\xff" and png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(decoded[:12].astype(int) - photo[:12]).max() < 12  # the red band stays red
    assert np.abs(decoded.astype(int) - photo).mean() < 6
    assert len(jpeg) < len(png) / 2
    with pytest.raises(ValueError, match="unknown photo format"):
        encode_photo(photo, "bmp")


class ConstantModel:
    """A stand-in generator: returns a fixed value (or shape) whatever the input."""

    def __init__(self, value: float = 0.0, channels: int = 3) -> None:
        self.value, self.channels, self.calls = value, channels, []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape[0])
        n, _, h, w = batch.shape
        return np.full((n, self.channels, h, w), self.value, np.float32)


def test_probe_refuses_nan_wrong_shape_and_crashing_models():
    probe(ConstantModel(0.5), 32)
    with pytest.raises(ModelRefused, match="non-finite"):
        probe(ConstantModel(float("nan")), 32)
    with pytest.raises(ModelRefused, match="shape"):
        probe(ConstantModel(0.0, channels=1), 32)

    class Crashing:
        def predict(self, batch):
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(ModelRefused, match="out of memory"):
        probe(Crashing(), 32)


def test_batch_runs_one_pass_per_category_and_keeps_order():
    sketch = probe_sketch(32)

    class Job:
        def __init__(self, category, size=32):
            self.category = category
            self.sketch = sketch.packed if size == 32 else np.zeros((9, size, size), np.uint8)

    top, hat = ConstantModel(1.0), ConstantModel(-1.0)
    champions = {"top": Champion("top", 3, 1, 0.5, "r", "registry", top),
                 "hat": Champion("hat", 9, 1, 0.5, "r", "registry", hat)}
    jobs = [Job("top"), Job("hat"), Job("top"), Job("pants"), Job("top", size=16)]
    metrics.series("s2f_forward_seconds")  # registered before the first sample is read
    timed = lambda: prometheus_client.REGISTRY.get_sample_value("s2f_forward_seconds_count",  # noqa: E731
                                                                 {"category": "top"}) or 0.0
    before = timed()
    results = colorize_jobs(champions, jobs, 32)
    assert timed() == before + 1  # one timed forward pass for the two "top" sketches
    assert [r["category"] for r in results] == ["top", "hat", "top", "pants", "top"]
    assert top.calls == [2] and hat.calls == [1]
    assert results[0]["version"] == 3 and results[0]["image"].min() == 255
    assert results[1]["version"] == 9 and results[1]["image"].max() == 0
    assert "no colorizer is loaded for 'pants'" in results[3]["error"]
    assert "32x32" in results[4]["error"] and results[4]["image"] is None


def test_metric_names_are_what_monitoring_expects():
    names = metrics.exported_names()
    assert {"s2f_requests_total", "s2f_model_info", "s2f_batch_size_bucket", "s2f_generation_seconds_count",
            "s2f_hints_per_sketch_sum", "s2f_model_swaps_total"} <= names


def test_auto_category_follows_the_classifier_champion_and_refuses_bad_ones(tmp_path, project_root):
    """category=auto against a real SQLite registry: nothing before the first champion (a 422),
    the champion after it, a promotion followed, a classifier naming foreign categories refused."""
    import mlflow

    from mlflow_sandbox import isolated_mlflow
    from sketch2fashion.classifier import registry
    from sketch2fashion.classifier.model import SketchClassifier, save_classifier
    from sketch2fashion.imaging.io import decode_rgb
    from sketch2fashion.registry.promotion import promote
    from sketch2fashion.registry.tracking import configure, get_or_create_experiment
    from sketch2fashion.serving.auto_category import MODEL, NO_CLASSIFIER, CategoryClassifier

    assert MODEL == registry.MODEL_NAME
    drawing = decode_rgb(sketch_png())
    params = {**load_params(project_root / "params.yaml"), "categories": ["top", "pants"]}
    config = ServingConfig.from_params(params, tmp_path)

    def register(categories, seed):
        torch.manual_seed(seed)
        path = save_classifier(tmp_path / f"c{seed}.pt", SketchClassifier(categories, image_size=32, width=8))
        with mlflow.start_run(experiment_id=get_or_create_experiment("classifier")):
            return int(registry.log_and_register(path, 0.5, client).version)

    with isolated_mlflow():
        client = configure(tmp_path)
        served = CategoryClassifier(config, source="registry")
        assert not served.sync()
        with pytest.raises(BadRequest) as refused:
            served(drawing)
        assert refused.value.status == 422 and refused.value.message == NO_CLASSIFIER
        assert served.describe()["version"] is None

        first = register(["top", "pants"], 0)
        promote(client, "sketch-classifier", first)
        assert served.sync() and served.describe()["version"] == first
        assert served(drawing) in {"top", "pants"}
        assert served(drawing) == served(cv2.resize(drawing, drawing.shape[1::-1]))  # deterministic
        assert not served.sync()  # nothing new: nothing reloaded

        foreign = register(["hat", "skirt"], 1)  # names categories this service does not serve
        promote(client, "sketch-classifier", foreign)
        refused_before = prometheus_client.REGISTRY.get_sample_value(
            "s2f_model_swaps_total", {"category": "auto", "outcome": "refused"}) or 0.0
        assert not served.sync() and served.describe()["version"] == first  # the old one keeps answering
        assert prometheus_client.REGISTRY.get_sample_value(
            "s2f_model_swaps_total", {"category": "auto", "outcome": "refused"}) == refused_before + 1
        assert not served.sync()  # a refused version is not retried

        second = register(["pants", "top"], 2)
        promote(client, "sketch-classifier", second)
        assert served.sync() and served.describe()["version"] == second
        assert prometheus_client.REGISTRY.get_sample_value(
            "s2f_served_model_info", {"model": "sketch-classifier", "version": str(second)}) == 1


@pytest.mark.slow
def test_a_broken_candidate_is_refused_before_any_compile_and_a_good_one_is_compiled_before_it_serves(
        tmp_path, monkeypatch):
    """The probe runs on the uncompiled model first: a NaN candidate costs one load, never a
    compile (minutes on a slow CPU while the refusal waits). A first champion serves at once and is
    compiled behind; a replacement is compiled while the old champion still serves."""
    import dataclasses

    from mlflow_sandbox import isolated_mlflow
    from serving_fixtures import add_version, make_project, promote_version
    from sketch2fashion.registry.colorizer_model import ColorizerModel
    from sketch2fashion.serving.champions import ChampionBoard
    from sketch2fashion.serving.config import load_serving_config

    project = make_project(tmp_path / "project", catalog=False, compile="off")
    asked: list[str] = []
    compile_for_real = ColorizerModel.compile

    top_while_compiling: list[int | None] = []

    def recording_compile(self, setting, batch_sizes):
        asked.append(setting)
        if setting == "on":
            top_while_compiling.append(board.champions["top"].version if "top" in board.champions else None)
        return compile_for_real(self, "off", batch_sizes)  # records the request; compiling is not under test

    monkeypatch.setattr(ColorizerModel, "compile", recording_compile)
    board = ChampionBoard(dataclasses.replace(load_serving_config(project.root), compile="on"))
    with isolated_mlflow():
        assert sorted(board.sync()) == ["pants", "top"]
        # every good champion is loaded, probed and served uncompiled first; then each is compiled
        assert asked == ["off", "off", "on", "on"]
        broken = add_version(project.root, "top", seed=9, ssim=0.9, broken=True)
        promote_version(project.root, "top", broken)
        assert board.sync() == []
        assert "on" not in asked[4:]  # the broken one was loaded uncompiled and refused: no compile asked
        assert board.champions["top"].version == 1
        good = add_version(project.root, "top", seed=10, ssim=0.9)
        promote_version(project.root, "top", good)
        assert board.sync() == ["top"]
    assert asked[-2:] == ["off", "on"] and top_while_compiling[-1] == 1  # v1 served while v3 compiled
    assert board.champions["top"].version == good


def test_a_failing_registry_poll_shows_no_path_uri_or_exception_text(tmp_path, caplog, project_root):
    """/models shows `last_poll_error` to anyone: a fixed phrase there, the details in the log."""
    from sketch2fashion.serving.champions import ChampionBoard

    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "mlflow.db").write_bytes(b"this is not a SQLite database" * 100)
    params = {**repo_params(project_root, model_source="registry"), "categories": ["top"]}
    config = ServingConfig.from_params(params, tmp_path)
    board = ChampionBoard(config)  # ColorizerHost.status() hands its last_error to /models
    with caplog.at_level("WARNING", logger="sketch2fashion.serving"):
        board.poll()
    shown = board.last_error
    assert shown and str(tmp_path) not in shown and "sqlite" not in shown.lower() and "Error" not in shown
    assert str(tmp_path) in caplog.text or "sqlite" in caplog.text.lower()  # the log keeps the details


def test_a_missing_catalog_index_error_names_the_fix_not_the_path(tmp_path, caplog, project_root):
    from sketch2fashion.serving.catalog import NO_INDEX, CatalogHolder

    (tmp_path / "params.yaml").write_text(
        "categories: [top]\ncatalog: {store: data/catalog/catalog.sqlite, index: data/catalog/index, url: ''}\n")
    params = {**repo_params(project_root, poll_seconds=3600), "categories": ["top"]}
    config = ServingConfig.from_params(params, tmp_path)
    with caplog.at_level("WARNING", logger="sketch2fashion.serving"):
        holder = CatalogHolder(config)
    try:
        assert holder.error == NO_INDEX and str(tmp_path) not in holder.error
        with pytest.raises(LookupError) as err:
            holder.search(photo=None, sketch=None, text="red", category=None, top_k=3)
        assert str(tmp_path) not in str(err.value)
        assert str(tmp_path) in caplog.text  # the log keeps where it looked
    finally:
        holder.stop()


def generator_files(root, category: str) -> list:
    """Every stored copy of a category's exported generator in a project's MLflow artifacts."""
    import json as _json

    return [path for path in root.rglob("generator.pt2")
            if _json.loads((path.parent / "colorizer.json").read_text())["category"] == category]


@pytest.mark.slow
def test_a_champion_that_cannot_load_is_retried_with_backoff_while_the_others_serve(tmp_path):
    """Truncated artifact at start-up: pants serves, top is missing; once the file is back, the
    next retry loads it by itself (no new promotion)."""
    import dataclasses

    from mlflow_sandbox import isolated_mlflow
    from serving_fixtures import make_project
    from sketch2fashion.serving.champions import ChampionBoard
    from sketch2fashion.serving.config import load_serving_config
    from waiting import wait_until

    project = make_project(tmp_path / "project", catalog=False, compile="off")
    files = generator_files(project.root, "top")
    assert files
    saved = {path: path.read_bytes() for path in files}
    for path in files:
        path.write_bytes(saved[path][:1000])  # truncated
    board = ChampionBoard(dataclasses.replace(load_serving_config(project.root), poll_seconds=0.05))
    with isolated_mlflow():
        assert board.sync() == ["pants"]
        assert board.missing() == ["top"] and not board.ready()
        assert board.sync() == []  # within the backoff: not tried again at once
        for path, data in saved.items():
            path.write_bytes(data)
        wait_until(lambda: board.sync() == ["top"], "the repaired champion to load", timeout=120, interval=0.05)
    assert board.ready() and board.champions["top"].version == 1


def test_product_cards_never_name_a_server_path():
    """A shop's web photo stays; a local path or a generated card's file:// URL becomes the photo route."""
    from sketch2fashion.serving.catalog import public_card

    card = {"id": "a b/1", "title": "t", "link": "https://shop.example/p", "image_link": "https://cdn.example/1.jpg",
            "price": None, "currency": "", "category": "top", "score": 1.0}
    assert public_card(card) == card
    for local in ("top/top-0001.png", "file:///srv/photos/train/t-shirt/1.jpg", "/abs/path.png"):
        shown = public_card({**card, "image_link": local})
        assert shown["image_link"] == "/catalog/images/a%20b%2F1" and {**shown, "image_link": local} == {**card, "image_link": local}
