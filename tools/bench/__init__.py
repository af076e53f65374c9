"""`make bench`: meta_webhook judged against a bare functions-framework function, side by side
in one run, on what the function itself costs.

- :mod:`tools.bench.serve` builds both bundles and serves them as production does;
- :mod:`tools.bench.cold` measures cold starts (launch to first 200);
- :mod:`tools.bench.steady` loads both in turn with wrk (:mod:`tools.bench.load`), metering CPU
  per process (:mod:`tools.bench.cpu`) and database round trips (:mod:`tools.bench.roundtrips`);
- :mod:`tools.bench.report` judges the targets and prints the report;
- :mod:`tools.bench.cli` is ``python -m tools.bench``.

docs/PERFORMANCE.md has the figures and the method.
"""
