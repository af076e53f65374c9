"""The local stack: the embedded PostgreSQL with the real migrations (``local``), the PostgREST
stand-in, the functions served as in production (``serve``), ``make dev`` (``dev``), env files and
local JWTs."""
