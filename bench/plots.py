"""bench/serving.png: served throughput and p99 latency against concurrency, from results.json.

One look shows what the tables say row by row: where each setup saturates, how far the service
is above the plain handler, and what waiting costs at each load. Drawn by `bench/run_all.py`
(also with `--render-only`); matplotlib's Agg backend, no display needed.

    python -m bench.plots --results bench/results.json --out bench/serving.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SETUPS = (("batching", "adaptive batching", "-o", "tab:blue"), ("no_batching", "batching off", "--s", "tab:orange"),
          ("baseline", "baseline handler", ":^", "tab:green"))
MODELS = (("full_unet", "full U-Net (ngf 64)"), ("champion", "demo champion (ngf 32)"))


def _rate(row: dict) -> float:
    return row["steady_rps"] if row.get("steady_rps") is not None else row["throughput_rps"]


def plot_serving(results: dict, out: Path) -> Path | None:
    """Write the figure; None when results.json has no serve section."""
    serve = results.get("serve")
    if not serve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for col, (key, title) in enumerate(MODELS):
        model = serve.get(key) or {}
        for setup, label, style, colour in SETUPS:
            rows = sorted((r for r in model.get(setup) or [] if r.get("endpoint", "colorize") == "colorize"
                           and r.get("concurrency")), key=lambda r: r["concurrency"])
            if not rows:
                continue
            levels = [r["concurrency"] for r in rows]
            axes[0][col].plot(levels, [_rate(r) for r in rows], style, color=colour, label=label)
            axes[1][col].plot(levels, [r["p99_ms"] for r in rows], style, color=colour, label=label)
        raw = (results.get("headline", {}).get("by_model", {}).get(key) or {}).get("raw_beside_served_img_per_s")
        if raw:
            axes[0][col].axhline(raw, color="grey", linewidth=1, label="raw generator, best batch, timed beside")
        axes[0][col].set_title(f"/colorize, {title}")
        axes[0][col].set_ylabel("OK answers / s")
        axes[1][col].set_ylabel("p99 latency (ms)")
        axes[1][col].set_xlabel("concurrent clients")
        axes[1][col].set_yscale("log")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
        axes[0][col].legend(fontsize=8)
    fig.suptitle(f"Served /colorize on {results.get('machine', {}).get('cpu_model', 'this machine')} "
                 f"({results.get('section_dates', {}).get('serve', '')})", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("results.json"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("serving.png"))
    args = parser.parse_args(argv)
    written = plot_serving(json.loads(args.results.read_text()), args.out)
    print(written or "no serve section in the results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
