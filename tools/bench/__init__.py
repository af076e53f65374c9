"""`make bench`: meta_webhook, calendly_webhook and place_call judged against a bare
functions-framework function, side by side in one run, on what each function itself costs; and
speed to lead, from a Meta delivery to the ElevenLabs call request.

- :mod:`tools.bench.serve` builds the bundles and serves them as production does;
- :mod:`tools.bench.cold` measures cold starts (launch to first 200);
- :mod:`tools.bench.steady` loads each in turn with wrk (:mod:`tools.bench.load`), metering CPU
  per process (:mod:`tools.bench.cpu`) and database round trips (:mod:`tools.bench.roundtrips`);
- :mod:`tools.bench.speed` times leads from the Meta delivery to the ElevenLabs call request;
- :mod:`tools.bench.report` judges the targets and prints the report;
- :mod:`tools.bench.cli` is ``python -m tools.bench``.

docs/PERFORMANCE.md has the figures and the method.
"""
