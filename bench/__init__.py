"""`make bench` (`python -m bench.run_all`): every performance figure of Sketch2Fashion, measured
in one run on this machine; bench/README.md is generated from bench/results.json, bench/NOTES.md
says how to read them and what changed."""
