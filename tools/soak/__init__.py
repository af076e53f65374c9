"""`make soak`: a bounded load-and-fault run of meta_webhook on the local embedded stack.

It starts the embedded stack (tools/stack/local.py: real Postgres with the migrations applied by the
Supabase CLI, the PostgREST stand-in, the Graph fake), serves meta_webhook as production does
(functions-framework and gunicorn, from the bundle ``tools.bundle`` builds, nothing of the
repository on ``sys.path``), and then:

1. **load**: sends signed leadgen deliveries (one change each, unique ids from a fresh
   clock-seeded base, a share of them repeats of an earlier id, half of those alongside the
   first delivery of that id) at a fixed concurrency; every non-2xx answer and every connection
   error is redelivered, as Meta does, with a short bounded backoff;
2. **faults**, during the load: the Graph fake answers every Nth fetch with a 503 (Graph's
   error shape, code 2); meta_webhook's process group is killed with SIGKILL once and started
   again; Postgres is stopped and started again once;
3. **drain**: the faults stop, then ``POST /sweep`` until no lead of the run is
   ``fetch_pending`` (the retry wait of the leads still pending is cut to now between sweeps);
4. **checks**: every lead stored once, fetched once, none pending, no half-written rows, every
   delivery answered 2xx in the end (tools/soak/checks.py says what each means).

It prints its figures (deliveries, repeats, non-2xx answers by status, throughput, latency, the
outage windows, the drain) and exits 0 when every check passes, 1 on any loss, 2 when it could
not run. ``--ingest-scaling`` instead measures what one delivery of many changes costs
(tools/soak/scaling.py). docs/RELIABILITY.md has the figures of a full run.

    python -m tools.soak [--deliveries 10000] [--concurrency 32] [--json PATH]
    python -m tools.soak --ingest-scaling
"""
