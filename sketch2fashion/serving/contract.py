"""The public API as data: each operation's form fields, answers and error statuses.

One declaration, three readers: the endpoints read exactly these form fields (through
`requests.read_form`, which stays the only parser), `web.make_app` turns them into the OpenAPI
schema FastAPI serves at /openapi.json (as each route's `openapi_extra` and `responses`: FastAPI
never parses these bodies itself, so bad input keeps its 4xx `{"error": ...}`), and
`api_table` renders the README's table from that schema. Limits, categories and photo formats
come from the serving config, so the schema says what this server accepts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field as ModelField

from sketch2fashion.serving.config import AUTO_CATEGORY, PHOTO_FORMATS, PHOTO_MEDIA_TYPES, ServingConfig

UPLOAD_TYPES = ("image/png", "image/jpeg")
"""What an uploaded image may be (imaging.io decodes these; anything else is a 400 'not an image')."""
ERROR_STATUSES = {
    400: "A form field or file is wrong; the message says which and what to send.",
    404: "No such product, or it has no cached photo.",
    413: "The request body is over `serving.limits.max_body_bytes`, or an image over `max_pixels`.",
    415: "Not a multipart/form-data form.",
    422: "`category=auto`, but no sketch classifier is trained (`dvc repro train_classifier`).",
    429: "More than `serving.traffic.max_concurrency` requests in flight; retry after `Retry-After` seconds.",
    503: "A model, the catalog index or a service cannot answer now; retry after `Retry-After` seconds.",
    504: "Not answered within `serving.traffic.timeout` seconds.",
}
RETRY_STATUSES = (429, 503)
"""Answers that carry `Retry-After`: the request was fine, the server is busy or not ready."""
COMMON_ERRORS = (429, 503, 504)


# --- the JSON answers ---------------------------------------------------------------------------

class ErrorBody(BaseModel):
    """Every error answer: one line saying what went wrong and what to change."""

    error: str


class Product(BaseModel):
    """A product card (catalog.search.ProductHit)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    link: str
    image_link: str = ModelField(description="The shop's photo (a web URL), or /catalog/images/{id}: the cached "
                                             "copy, for feeds whose image links are local files.")
    price: Optional[float]
    currency: str
    category: str
    score: float = ModelField(description="Higher is more alike; products come best first.")


CATALOG_VERSION = ModelField(
    description="The published index version that ranked these products (one version per answer, also "
                "while a new one is being swapped in).")


class SearchAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    products: list[Product]
    catalog_version: Optional[str] = CATALOG_VERSION


class ColorizeAndSearchAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = ModelField(description="The generated photo, base64.", json_schema_extra={"contentEncoding": "base64"})
    image_type: Literal[tuple(PHOTO_MEDIA_TYPES.values())]  # type: ignore[valid-type]
    category: str = ModelField(description="The category drawn (the classifier's answer for `auto`).")
    model_version: Optional[int] = ModelField(description="Registry version of the colorizer that drew it.")
    products: list[Product]
    catalog_version: Optional[str] = CATALOG_VERSION
    open_ends: list[list[float]] = ModelField(
        description="Stroke ends [x, y] (fractions of the square-padded drawing) where the outline is still "
                    "open and the colour would run out: where the page asks the shopper to close it. Empty "
                    "when the outline holds the colour.")


class TrainingProgress(BaseModel):
    """What a running training wrote last (colorizer/progress.py)."""

    state: Optional[str]
    epoch: Optional[int]
    epochs: Optional[int]
    step: Optional[int]
    steps: Optional[int]
    images_per_s: Optional[float]
    updated_at: Optional[float]


class ModelStatus(BaseModel):
    """One category's champion (serving.champions); nulls while none is loaded."""

    category: str
    version: Optional[int]
    epoch: Optional[int]
    ssim: Optional[float]
    run_id: Optional[str]
    source: Optional[str]
    loaded_at: Optional[float] = ModelField(description="Unix time the model was swapped in.")
    compiled: Optional[dict[str, Any]] = ModelField(None, description="torch.compile status.")
    training: Optional[TrainingProgress] = ModelField(
        None, description="For a category without a champion: how far its running training has come.")


class ServedModel(BaseModel):
    """The classifier behind `category=auto`, or the encoder that embedded the published index."""

    model_config = ConfigDict(extra="allow")
    model: str = ModelField(description="Registry model name (sketch-classifier, catalog-encoder).")
    version: Optional[int] = ModelField(description="Registry version; null while none is loaded.")


class ModelsAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelStatus]
    source: str = ModelField(description="Where champions come from: registry or bundled.")
    ready: bool
    poll_seconds: float
    last_poll_error: Optional[str]
    classifier: Optional[ServedModel] = ModelField(None, description="The sketch classifier served for auto.")
    encoder: Optional[ServedModel] = ModelField(None, description="The catalog encoder of the served index.")


# --- the forms ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormField:
    """One multipart field: an uploaded image (`file`) or a text value with its JSON schema."""

    name: str
    kind: Literal["file", "text"]
    description: str
    required: bool = False
    schema: dict[str, Any] = field(default_factory=dict)

    def json_schema(self) -> dict[str, Any]:
        if self.kind == "file":
            return {"type": "string", "format": "binary", "description": self.description}
        return {"type": "string", **self.schema, "description": self.description}


@dataclass(frozen=True)
class FormSpec:
    fields: tuple[FormField, ...]

    @property
    def files(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.kind == "file")

    @property
    def texts(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.kind == "text")

    def request_body(self) -> dict[str, Any]:
        """The OpenAPI requestBody: a multipart form, images typed by the `encoding` object."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
            "additionalProperties": False,
        }
        required = [f.name for f in self.fields if f.required]
        if required:
            schema["required"] = required
        encoding = {f.name: {"contentType": ", ".join(UPLOAD_TYPES)} for f in self.fields if f.kind == "file"}
        return {"required": True, "content": {"multipart/form-data": {"schema": schema, "encoding": encoding}}}


@dataclass(frozen=True)
class Operation:
    """One public route: what `web.make_app` declares and `endpoints.Endpoints` answers."""

    operation_id: str
    method: Literal["GET", "POST"]
    path: str
    summary: str
    description: str
    ok: dict[str, Any]
    errors: tuple[int, ...]
    form: FormSpec | None = None
    path_parameters: tuple[dict[str, Any], ...] = ()

    def responses(self) -> dict[int | str, dict[str, Any]]:
        answers: dict[int | str, dict[str, Any]] = {200: self.ok}
        for status in self.errors:
            answer: dict[str, Any] = {"model": ErrorBody, "description": ERROR_STATUSES[status]}
            if status in RETRY_STATUSES:
                answer["headers"] = {"Retry-After": {
                    "description": "Seconds to wait before retrying (`serving.traffic.retry_after`).",
                    "required": True, "schema": {"type": "integer"}}}
            answers[status] = answer
        return answers

    def openapi_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.form is not None:
            extra["requestBody"] = self.form.request_body()
        if self.path_parameters:
            extra["parameters"] = list(self.path_parameters)
        return extra


def operations(config: ServingConfig) -> dict[str, Operation]:
    """Every public operation of a server with this config, by operation id (= Endpoints method)."""
    limits = config.limits
    cats = list(config.categories)
    size_note = (f"PNG or JPEG; at most {limits.max_body_bytes} bytes for the whole request and "
                 f"{limits.max_pixels} pixels, at least {limits.min_side} px a side")
    sketch = FormField("sketch", "file", f"The drawing: black lines and colour dots on white ({size_note}).",
                       required=True)
    category_for_colorizer = FormField(
        "category", "text", f"The garment drawn; `{AUTO_CATEGORY}` lets the sketch classifier pick (case-insensitive).",
        required=True, schema={"enum": cats + [AUTO_CATEGORY]})
    photo_format = FormField(
        "format", "text", f"How the generated photo is sent back (`jpg` = `jpeg`; default: "
        f"`serving.photo_format`, here {config.photo_format}).",
        schema={"enum": list(PHOTO_FORMATS), "default": config.photo_format})
    top_k = FormField("top_k", "text", "How many products to return.",
                      schema={"type": "integer", "minimum": 1, "maximum": limits.max_top_k,
                              "default": limits.default_top_k})
    text = FormField("text", "text", "Words the products should match, such as `long red sleeves`.",
                     schema={"maxLength": limits.max_text_chars})
    photo_types = {media: {"schema": {"type": "string", "format": "binary"}} for media in PHOTO_MEDIA_TYPES.values()}
    product_photo_types = {media: {"schema": {"type": "string", "format": "binary"}}
                           for media in ("image/png", "image/jpeg", "image/webp", "image/gif")}
    form_errors = (400, 413, 415)
    # A product card's photo is one GET away (OpenAPI links: the docs show it, stateful fuzzing follows it).
    photo_link = {"productImage": {"operationId": "catalog_image",
                                   "parameters": {"product_id": "$response.body#/products/0/id"},
                                   "description": "The first product's photo."}}
    return {op.operation_id: op for op in (
        Operation(
            "colorize", "POST", "/colorize", "Draw -> photo",
            "The category's champion colorizer turns the drawing into a product photo.",
            ok={"description": "The generated photo.", "content": photo_types, "headers": {
                "X-S2F-Category": {"description": "The category drawn.", "schema": {"type": "string"}},
                "X-S2F-Model-Version": {"description": "Registry version of the colorizer.",
                                        "schema": {"type": "string"}}}},
            errors=form_errors + (422,) + COMMON_ERRORS,
            form=FormSpec((sketch, category_for_colorizer, photo_format))),
        Operation(
            "search", "POST", "/search", "Photo (+ drawing, words) -> products",
            "The catalog's products most like a photo, optionally also like a drawing and some words.",
            ok={"description": "Products, best first.", "model": SearchAnswer, "links": photo_link},
            errors=form_errors + COMMON_ERRORS,
            form=FormSpec((
                FormField("image", "file", f"A product photo ({size_note}).", required=True),
                FormField("sketch", "file", "The drawing the photo was made from (same limits)."),
                text,
                FormField("category", "text", "Only products of this category (case-insensitive).",
                          schema={"enum": cats}),
                top_k))),
        Operation(
            "colorize_and_search", "POST", "/colorize_and_search", "Draw -> photo + products",
            "/colorize, then /search with the generated photo, the drawing and the words.",
            ok={"description": "The photo (base64) and the products.", "model": ColorizeAndSearchAnswer,
                "links": photo_link},
            errors=form_errors + (422,) + COMMON_ERRORS,
            form=FormSpec((sketch, category_for_colorizer, text, top_k, photo_format))),
        Operation(
            "models", "GET", "/models", "Serving champions",
            "Each category's champion colorizer: registry version, epoch, val SSIM, MLflow run.",
            ok={"description": "The champions and the registry poll.", "model": ModelsAnswer},
            errors=COMMON_ERRORS),
        Operation(
            "catalog_image", "GET", "/catalog/images/{product_id}", "A product's photo",
            "The cached photo a product card names (for feeds whose `image_link` is a local path).",
            ok={"description": "The photo file.", "content": product_photo_types},
            errors=(404,) + COMMON_ERRORS,
            path_parameters=({"name": "product_id", "in": "path", "required": True,
                              "description": "The product's `id` from a search answer (may hold `/`).",
                              "schema": {"type": "string"}},)),
    )}
