"""`s2f`: the project's command line. Each command is a thin wrapper over library functions."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from sketch2fashion.params import ParamsError, load_params, with_profile


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sketch2fashion")
def main() -> None:
    """Sketch2Fashion: sketch a garment, get a photo and the products that look like it."""


@main.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              help="Params file whose `demo` and `categories` sections supply the defaults.")
@click.option("--per-category", type=int, default=None, help="Garments per category.")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same data).")
@click.option("--size", type=int, default=None, help="Photo side in pixels.")
def demo_data(out: Path, params_path: str, per_category: int | None, seed: int | None,
              size: int | None) -> None:
    """Render procedural product photos per category into OUT, plus OUT/products.csv."""
    from sketch2fashion.demo import make_demo_dataset

    params = _params_or_defaults(params_path)
    demo = params.get("demo", {})
    cats = params.get("categories") or ["top", "pants", "skirt", "hat"]
    feed = make_demo_dataset(
        out,
        categories=cats,
        per_category=per_category if per_category is not None else int(demo.get("per_category", 150)),
        seed=seed if seed is not None else int(demo.get("seed", 0)),
        size=size if size is not None else int(demo.get("size", 512)),
    )
    click.echo(f"wrote {feed}")


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the service listens on.")
@click.option("--port", type=int, default=3000, show_default=True, help="Port of the page and the API.")
@click.option("--serve/--no-serve", default=True,
              help="Keep serving after the pipeline finishes (--no-serve: stop once every champion is up).")
def demo(host: str, port: int, serve: bool) -> None:
    """The main job: dvc repro in two waves, the page served from the first champion on.

    Prints (and writes to reports/demo/timing.json) the seconds to the page, to its first garment
    and to all champions.
    """
    from sketch2fashion.demo_run import run_demo

    try:
        timing = run_demo(Path.cwd(), host=host, port=port, serve=serve, echo=click.echo)
    except (ParamsError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({k: v for k, v in timing.__dict__.items() if k != "notes"}))


@main.command("params")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--profile", default=None, help="Profile overlay: a name under profiles/ or a path.")
def show_params(params_path: str, profile: str | None) -> None:
    """Print the effective parameters (params.yaml with an optional profile merged in)."""
    try:
        params = with_profile(load_params(params_path), profile)
    except ParamsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(yaml.safe_dump(params, sort_keys=False))


@main.command("smoke")
@click.option("--profile", default="tiny", show_default=True, help="Profile overlay for the run.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch project to run in (default: a new temporary folder, removed after).")
@click.option("--keep/--no-keep", default=False, help="Keep the scratch project for inspection.")
def smoke(profile: str, workdir: Path | None, keep: bool) -> None:
    """Run the whole DVC pipeline on a tiny profile in a scratch copy, twice.

    The second `dvc repro` must find nothing to do; the command fails otherwise.
    """
    from sketch2fashion.smoke import run_smoke

    try:
        summary = run_smoke(Path.cwd(), profile=profile, workdir=workdir, keep=keep)
    except (ParamsError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, indent=2))


@main.command("real")
@click.option("--budget", type=click.Choice(["cpu", "gpu", "tiny"]), default="cpu", show_default=True,
              help="cpu: sized for 2 CPU cores; gpu: the full U-Net (profiles/real-gpu.yaml); tiny: minutes, for tests.")
@click.option("--photos", type=click.Path(file_okay=False, path_type=Path), default=Path("../shared/data/clothing-small"),
              show_default=True, help="Photo folder laid out <root>/<category>/*.jpg (one level of split folders is fine).")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("real"), show_default=True,
              help="The run's own project folder: data, models, reports and its MLflow store (resumed when it exists).")
@click.option("--per-category", type=click.IntRange(min=1), default=None,
              help="Use only the first N photos of each category (a quick look; linked, not copied).")
def real(budget: str, photos: Path, project: Path, per_category: int | None) -> None:
    """Every pipeline stage on a real photo set without a product feed, into its own project and registry.

    Each photo gets a generated product card (marked as such) so the catalog works; the demo's
    data and registry are untouched. Serve the result with `make serve PROJECT=real`.
    """
    from sketch2fashion.real_run import RealRunError, run_real

    try:
        summary = run_real(Path.cwd(), project.resolve(), budget=budget, photos=photos, per_category=per_category)
    except RealRunError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"s2f real: done in {summary['seconds']:.0f} s; reports in {project}/reports, "
               f"`mlflow ui --backend-store-uri {summary['tracking_uri']}`, `make serve PROJECT={project}`")


@main.command("models")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(params_path: str, as_json: bool) -> None:
    """List the champion of every served model: each category's colorizer, the sketch classifier
    (category=auto) and the catalog encoder, with version, the gate's metric on val and test, MLflow run."""
    from sketch2fashion.registry.served import served_models
    from sketch2fashion.registry.tracking import configure

    rows = served_models(configure(), _categories(params_path))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'model':<20} {'version':>7} {'metric':>8} {'val':>7} {'test':>7}  run")
    for row in rows:
        val = f"{row['val']:.4f}" if row.get("val") is not None else "-"
        test = f"{row['test']:.4f}" if row.get("test") is not None else "-"
        click.echo(f"{row['model']:<20} {row.get('version') or '-':>7} {row['metric']:>8} {val:>7} {test:>7}  "
                   f"{row.get('run_id') or '(no champion)'}")


@main.command("promote")
@click.argument("model")
@click.argument("version")
def promote_cmd(model: str, version: str) -> None:
    """Make VERSION of MODEL the champion by hand, past the gate (the old one becomes `previous`).

    MODEL is a category (its colorizer), `sketch-classifier` or `catalog-encoder`.
    """
    from sketch2fashion.registry.promotion import PromotionError, promote
    from sketch2fashion.registry.tracking import configure

    try:
        decision = promote(configure(), model, version)
    except PromotionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(decision.to_dict(), indent=2))


@main.command("rollback")
@click.argument("model")
def rollback_cmd(model: str) -> None:
    """Give MODEL's `champion` alias back to the `previous` version (a category, `sketch-classifier`
    or `catalog-encoder`)."""
    from sketch2fashion.registry.promotion import PromotionError, rollback
    from sketch2fashion.registry.tracking import configure

    try:
        decision = rollback(configure(), model)
    except PromotionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(decision.to_dict(), indent=2))


@main.group("catalog")
def catalog() -> None:
    """The shop's product catalog: ingest a product feed."""


@catalog.command("ingest")
@click.argument("feed", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              help="Params file whose `catalog` section supplies the defaults.")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Catalog SQLite file (default: params catalog.store).")
@click.option("--allow-private", is_flag=True, default=None,
              help="Allow image links on loopback/private addresses (intranet feeds, tests).")
@click.option("--allow-file-urls", is_flag=True, default=None,
              help="Allow file:// image links to any local file (plain paths must stay in the feed's folder).")
@click.option("--jobs", type=int, default=None, help="Parallel image downloads.")
def catalog_ingest(feed: Path, params_path: str, store: Path | None, allow_private: bool | None,
                   allow_file_urls: bool | None, jobs: int | None) -> None:
    """Add, update and delete catalog products to match FEED (CSV, TSV or JSONL).

    Re-ingesting the same feed changes nothing; bad rows and images that fail to load are
    reported and skipped, and a product that fails keeps its previous version.
    """
    from dataclasses import fields

    from sketch2fashion.catalog.feed import FeedError
    from sketch2fashion.catalog.store import CatalogStore, IngestBusy, IngestSettings, ingest_feed

    section = dict(_params_or_defaults(params_path).get("catalog") or {})
    known = {f.name for f in fields(IngestSettings)}
    chosen = {k: v for k, v in section.items() if k in known}  # load_params refused unknown keys
    if allow_private is not None:
        chosen["allow_private"] = allow_private
    if allow_file_urls is not None:
        chosen["allow_file_urls"] = allow_file_urls
    if jobs is not None:
        chosen["jobs"] = jobs
    settings = IngestSettings(**chosen)
    if not feed.is_file():
        raise click.ClickException(f"{feed}: no such feed file; give the path of a CSV, TSV or JSONL feed")
    store_path = store or Path(section.get("store", "data/catalog/catalog.sqlite"))
    store_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with CatalogStore(store_path) as catalog_store:
            report = ingest_feed(feed, catalog_store, settings=settings)
    except (FeedError, IngestBusy) as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in report.skipped:
        click.echo(f"skipped line {problem.line} id {problem.id or '-'}: {problem.reason}", err=True)
    click.echo(report.summary())
    if report.skipped and not (report.added or report.updated or report.unchanged):
        raise click.ClickException(f"{feed}: every row was skipped; see the reasons above")


@catalog.command("cards")
@click.argument("photos", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              help="Params file whose `categories` and `source.aliases` say which folders are which category.")
def catalog_cards(photos: Path, out: Path, params_path: str) -> None:
    """Write OUT, a product feed of generated cards for PHOTOS (class folders, no feed of their own).

    Each photo becomes a product named from its category and file, brand "(generated card)",
    linked to the reserved .invalid domain; its image link is the photo's file:// URL, so ingest
    the feed with --allow-file-urls (or catalog.allow_file_urls: true).
    """
    from sketch2fashion.catalog.cards import write_card_feed

    params = _params_or_defaults(params_path)
    try:
        count = write_card_feed(out, photos, _categories(params_path), (params.get("source") or {}).get("aliases"))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out}: {count} generated product cards for the photos under {photos}")


@main.group("bento")
def bento() -> None:
    """Package the BentoML service: bundle the registry champions, build a self-contained Bento."""


@bento.command("import")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def bento_import(params_path: str, as_json: bool) -> None:
    """Copy each category's champion from the MLflow registry into the BentoML model store.

    `service.py` declares the stored models, so `bentoml build` packs them into the Bento.
    Re-running only imports categories whose champion changed. Fails when a category has no
    champion (a Bento without it could not serve that category).
    """
    from sketch2fashion.registry.tracking import configure
    from sketch2fashion.serving.bento_models import import_champions, import_classifier

    client = configure()
    rows = import_champions(client, _categories(params_path))
    classifier = import_classifier(client)
    if as_json:
        click.echo(json.dumps([*rows, classifier], indent=2))
    else:
        for row in [*rows, {**classifier, "category": classifier["model"]}]:
            state = {True: "imported", False: "already stored", None: "NO CHAMPION"}[row["imported"]]
            click.echo(f"{row['category']:<18} v{row.get('version') or '-':<5} {state:<15} {row.get('tag') or ''}")
    if classifier["imported"] is None:
        click.echo("no sketch-classifier champion: the Bento will answer category=auto with a 422", err=True)
    missing = [row["category"] for row in rows if row["imported"] is None]
    if missing:
        raise click.ClickException(f"no champion for {', '.join(missing)}: promote one "
                                   "(`dvc repro` or `s2f promote CATEGORY VERSION`) before building a Bento")


@bento.command("build")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--bentofile", default="bentofile.yaml", show_default=True)
@click.pass_context
def bento_build(ctx: click.Context, params_path: str, bentofile: str) -> None:
    """`s2f bento import`, then `bentoml build`: a Bento that serves without the registry."""
    import bentoml

    ctx.invoke(bento_import, params_path=params_path, as_json=False)
    built = bentoml.bentos.build_bentofile(bentofile, build_ctx=".")
    click.echo(f"built {built.tag} (models: {', '.join(str(m.tag) for m in built.info.all_models)})")


# --- the public API, through sketch2fashion.client ------------------------------------------------

URL_OPTION = click.option("--url", envvar="S2F_URL", default="http://127.0.0.1:3000", show_default=True,
                          help="The server (`make serve`); or set S2F_URL.")
TIMEOUT_OPTION = click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                              help="Seconds to wait for each answer.")
IMAGE_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
JPEG_SUFFIXES = (".jpg", ".jpeg")


@main.command("colorize")
@click.argument("sketch", type=IMAGE_FILE)
@click.option("--category", "-c", required=True,
              help="The garment drawn: a category of the server's params.yaml, or `auto` (its classifier picks).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the photo (default: next to SKETCH, named <sketch>.photo.png or .jpg).")
@click.option("--format", "photo_format", type=click.Choice(["png", "jpeg"]), default=None,
              help="Photo format (default: JPEG for a .jpg/.jpeg --output, else the server's serving.photo_format).")
@URL_OPTION
@TIMEOUT_OPTION
def colorize_cmd(sketch: Path, category: str, output: Path | None, photo_format: str | None, url: str,
                 timeout: float) -> None:
    """Send SKETCH (a PNG or JPEG drawing) to a running server's /colorize; write the generated photo."""
    from sketch2fashion.client import Client

    if photo_format is None and output is not None and output.suffix.lower() in JPEG_SUFFIXES:
        photo_format = "jpeg"
    with Client(url, timeout=timeout) as api:
        photo = _call_api(sketch, url, lambda: api.colorize(sketch, category, format=photo_format))
    if output is None:
        output = sketch.with_name(f"{sketch.stem}.photo{'.jpg' if photo.media_type == 'image/jpeg' else '.png'}")
    photo.save(output)
    click.echo(f"wrote {output} ({photo.media_type}, category {photo.category}, model version {photo.model_version})")


@main.command("search")
@click.argument("image", type=IMAGE_FILE)
@click.option("--sketch", type=IMAGE_FILE, default=None, help="The drawing IMAGE was made from (optional).")
@click.option("--text", default=None, help="Words the products should match, e.g. \"long red sleeves\".")
@click.option("--category", "-c", default=None, help="Only products of this category.")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="How many products (default: the server's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@URL_OPTION
@TIMEOUT_OPTION
def search_cmd(image: Path, sketch: Path | None, text: str | None, category: str | None, top_k: int | None,
               as_json: bool, url: str, timeout: float) -> None:
    """The catalog products most like IMAGE (a product photo), through a running server's /search."""
    from dataclasses import asdict

    from sketch2fashion.client import Client

    with Client(url, timeout=timeout) as api:
        products = _call_api(image, url, lambda: api.search(image, sketch=sketch, text=text, category=category,
                                                             top_k=top_k))
    if as_json:
        click.echo(json.dumps([asdict(p) for p in products], indent=2))
        return
    click.echo(f"{'score':>7}  {'category':<10} {'price':>10}  title")
    for p in products:
        price = f"{p.price:.2f} {p.currency}" if p.price is not None else "-"
        click.echo(f"{p.score:>7.3f}  {p.category:<10} {price:>10}  {p.title}  [{p.id}]")


@main.command("api-table")
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              help="Params file whose `serving` limits and categories the schema states.")
@click.option("--write", "readme", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Replace the table between the api-table markers of this file (README.md) instead of printing.")
def api_table_cmd(params_path: str, readme: Path | None) -> None:
    """Render the public API's OpenAPI schema (what /openapi.json serves) as a Markdown table."""
    from sketch2fashion.serving.api_table import render_table, replace_section
    from sketch2fashion.serving.config import ServingConfig
    from sketch2fashion.serving.web import make_app

    try:
        config = ServingConfig.from_params(load_params(params_path), Path(params_path).resolve().parent)
    except ParamsError as exc:
        raise click.ClickException(str(exc)) from exc
    table = render_table(make_app(config).openapi())
    if readme is None:
        click.echo(table)
        return
    try:
        readme.write_text(replace_section(readme.read_text(encoding="utf-8"), table), encoding="utf-8")
    except ValueError as exc:
        raise click.ClickException(f"{readme}: {exc}") from exc
    click.echo(f"wrote the API table into {readme}")


def _call_api(upload: Path, url: str, call):
    """Run one client call; API errors become one-line CLI errors naming the file and what to do."""
    from sketch2fashion.client import RequestRejected, ServiceBusy, Unreachable

    try:
        return call()
    except RequestRejected as exc:
        raise click.ClickException(f"{upload}: the server refused it (HTTP {exc.status}): {exc.message}") from exc
    except ServiceBusy as exc:
        raise click.ClickException(f"{upload}: the server at {url} is busy or not ready (HTTP {exc.status}: "
                                   f"{exc.message}); try again in a moment") from exc
    except Unreachable as exc:
        raise click.ClickException(f"{upload}: {exc.message}; is the server running (`make serve`)? "
                                   "Give its address with --url or S2F_URL") from exc


def _categories(params_path: str) -> list[str]:
    from sketch2fashion.params import categories

    try:
        return categories(load_params(params_path))
    except ParamsError as exc:
        raise click.ClickException(str(exc)) from exc


def _params_or_defaults(path: str) -> dict:
    """The params file, {} when there is none; a broken one (bad YAML, an unknown key) is a CLI error."""
    try:
        return load_params(path)
    except ParamsError as exc:
        if Path(path).exists():
            raise click.ClickException(str(exc)) from exc
        return {}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
