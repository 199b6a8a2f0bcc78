"""`make reliability`: hostile input, injected faults and upload memory, against the real parts.

Runs the reliability tests in one pytest process (a real `bentoml serve` for the upload memory
and for the fuzzing and the killed Colorizer, a real MLflow SQLite registry, real loopback
servers for the feed), with the fuzzer at FUZZ_EXAMPLES generated requests per endpoint, then
writes reliability/results.json and the table in reliability/README.md from what the tests
measured. The normal test suite runs the same tests with a smaller fuzz (S2F_FUZZ_EXAMPLES
default). Exit status: pytest's.

    python reliability/run.py [--examples N] [--out reliability]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ_EXAMPLES = 2000
BAD_INPUT_TESTS = ["tests/test_fuzz_and_faults.py", "tests/test_upload_memory.py", "tests/test_feed_security.py"]
FAULTS = {
    "tests/test_fuzz_and_faults.py::test_killed_colorizer_worker_comes_back_and_no_request_fails_badly":
        "Colorizer worker killed (SIGKILL) under 8 streaming clients",
    "tests/test_serving_units.py::test_a_champion_that_cannot_load_is_retried_with_backoff_while_the_others_serve":
        "champion artifact truncated at start-up, repaired later",
    "tests/test_serving_units.py::test_a_broken_candidate_is_refused_before_any_compile_and_a_good_one_is_compiled_before_it_serves":
        "broken (NaN) champion promoted",
    "tests/test_serving_units.py::test_a_failing_registry_poll_shows_no_path_uri_or_exception_text":
        "registry database corrupt",
    "tests/test_serving_units.py::test_a_missing_catalog_index_error_names_the_fix_not_the_path":
        "catalog index missing",
    "tests/test_feed_security.py::test_one_deadline_covers_dns_every_redirect_hop_and_the_body":
        "image server dripping, slow redirect chain, DNS never answering",
    "tests/test_feed_security.py::test_a_second_ingest_fails_with_one_line_and_downloads_hold_no_write_lock":
        "second catalog ingest while one downloads",
    "tests/test_disk_full.py::test_disk_full_while_publishing_an_index_version_keeps_the_old_one_served":
        "disk full while publishing an index version",
    "tests/test_disk_full.py::test_disk_full_while_saving_a_checkpoint_keeps_the_last_whole_one":
        "disk full while saving a training checkpoint",
    "tests/test_swaps_under_load.py::test_a_promotion_under_8_streaming_clients_answers_every_request_from_one_version":
        "champion promoted (compile included) under 8 streaming clients",
    "tests/test_swaps_under_load.py::test_a_catalog_refresh_under_8_streaming_clients_answers_every_search_from_one_version":
        "catalog index version published under 8 streaming clients",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=FUZZ_EXAMPLES, help="generated requests per endpoint")
    parser.add_argument("--out", type=Path, default=ROOT / "reliability")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s2f-reliability-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "S2F_RELIABILITY": "1", "S2F_FUZZ_EXAMPLES": str(args.examples),
               "S2F_FUZZ_OUT": str(work / "fuzz.json"),
               "S2F_UPLOAD_MEMORY_OUT": str(work / "upload_memory.json"), "S2F_SWAP_OUT": str(work / "swap.json"),
               "PYTHONPATH": str(ROOT)}
        started = time.monotonic()
        tests = BAD_INPUT_TESTS + [node for node in FAULTS if not node.startswith(tuple(BAD_INPUT_TESTS))]
        rc = subprocess.call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s",
                              f"--junitxml={work / 'junit.xml'}", *tests], cwd=ROOT, env=env)
        minutes = (time.monotonic() - started) / 60
        results = summarise(work, args.examples, minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_readme(args.out / "README.md", results)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}, indent=2))
    return rc


def summarise(work: Path, examples: int, minutes: float) -> dict:
    outcomes = junit_outcomes(work / "junit.xml")
    fuzz = read_json(work / "fuzz.json") or {}
    memory = read_json(work / "upload_memory.json") or {}
    kill = read_json(work / "colorizer_kill.json") or {}
    swap = read_json(work / "swap.json") or {}
    fuzz_total = sum(n for counts in fuzz.values() for n in counts.values())
    fuzz_5xx = sum(n for counts in fuzz.values() for status, n in counts.items() if int(status) >= 500)
    feed_cases = sum(1 for node, passed in outcomes.items() if node.startswith("tests/test_feed_security.py"))
    uploads = memory.get("one_upload_mb", {})
    faults = [{"fault": what, "ran": node in outcomes, "survived": outcomes.get(node) is True, "test": node}
              for node, what in FAULTS.items()]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": round(minutes, 1),
        "fuzz_examples_per_endpoint": examples,
        "bad_inputs_tried": fuzz_total + len(uploads) + feed_cases,
        "bad_inputs_5xx": fuzz_5xx,
        "fuzz_answers": fuzz,
        "faults_injected": sum(f["ran"] for f in faults),
        "faults_survived": sum(f["survived"] for f in faults),
        "faults": faults,
        "requests_lost": kill.get("lost"),
        "load": {k: kill.get(k) for k in ("clients", "rate_per_s", "requests", "non_200", "outage_s")},
        "promotion_under_load": swap,
        "upload_peak_rss_mb": max(uploads.values()) if uploads else None,
        "upload_peak_rss_mb_by_case": uploads,
        "concurrent_uploads": memory.get("concurrent_uploads"),
        "concurrent_upload_peak_rss_mb": memory.get("concurrent_mb"),
        "tests": {"passed": sum(v is True for v in outcomes.values()),
                  "failed": sorted(k for k, v in outcomes.items() if v is False)},
    }


def junit_outcomes(path: Path) -> dict[str, bool]:
    """'file::test[param]' -> passed (skipped tests are left out)."""
    if not path.is_file():
        return {}
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        module = case.get("classname", "").replace(".", "/") + ".py"
        outcomes[f"{module}::{case.get('name')}"] = case.find("failure") is None and case.find("error") is None
    return outcomes


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_readme(path: Path, r: dict) -> None:
    load, swap = r["load"], r.get("promotion_under_load") or {}
    lines = [
        "# Reliability report",
        "",
        f"Written by `make reliability` (`python reliability/run.py`) on {r['date']} in {r['minutes']} minutes;",
        "the numbers are in `results.json`. What each test does is in its docstring.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| bad inputs tried (fuzzed requests, {r['fuzz_examples_per_endpoint']} per endpoint; worst-case uploads; "
        f"hostile feed cases) | {r['bad_inputs_tried']} |",
        f"| answered with a 5xx | {r['bad_inputs_5xx']} |",
        f"| faults injected / survived | {r['faults_injected']} / {r['faults_survived']} |",
        f"| load held while the Colorizer was killed | {load.get('clients')} clients, {load.get('rate_per_s')} req/s, "
        f"{load.get('requests')} requests, {load.get('non_200')} answered 503, outage {load.get('outage_s')} s |",
        f"| promotion under load (swap with compile) | {swap.get('clients')} clients, {swap.get('requests')} requests, "
        f"{swap.get('non_200')} not 200; swap took {swap.get('swap_seconds')} s; p99 {swap.get('p99_before_ms')} ms "
        f"before, {swap.get('p99_during_ms')} ms during ({swap.get('p99_ratio')}x; target <= 2x) |",
        f"| requests lost | {r['requests_lost']} |",
        f"| peak RSS one worst-case upload adds to the API process | {r['upload_peak_rss_mb']} MB |",
        f"| ... {r['concurrent_uploads']} worst-case uploads at once | {r['concurrent_upload_peak_rss_mb']} MB |",
        "",
        "| endpoint | answers (status: count) |",
        "|---|---|",
        *[f"| {name} | {', '.join(f'{s}: {n}' for s, n in sorted(counts.items()))} |"
          for name, counts in sorted(r["fuzz_answers"].items())],
        "",
        "| fault | survived |",
        "|---|---|",
        *[f"| {f['fault']} | {('yes' if f['survived'] else '**no**') if f['ran'] else 'not run'} |"
          for f in r["faults"]],
        "",
        "| worst-case upload | peak RSS added (MB) |",
        "|---|---|",
        *[f"| {name} | {mb} |" for name, mb in r["upload_peak_rss_mb_by_case"].items()],
        "",
    ]
    if r["tests"]["failed"]:
        lines += ["Failed tests:", "", *[f"- `{node}`" for node in r["tests"]["failed"]], ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
