"""A local stand-in for the one part of PostgREST this project uses: ``POST /rest/v1/rpc/<fn>``.

PostgREST itself cannot be installed on the embedded stack, so this small ASGI app does what it
does for an RPC call (https://docs.postgrest.org/en/v12/references/api/functions.html), with
the part of Supabase's API gateway in front of it that turns an API key into a role:

- an opaque API key in ``apikey`` (Supabase's ``sb_secret_…`` / ``sb_publishable_…``, not JWTs)
  runs as ``service_role`` (a secret key) or ``anon`` (the publishable key), as the CLI's local
  gateway does by swapping it for the matching JWT (supabase/cli ``internal/start/start.go``).
  ``Authorization: Bearer sb_…`` is taken only when it equals ``apikey``; any other ``sb_…`` key
  is refused as the gateway refuses it: 401 ``{"message":"Invalid API key"}``, no ``code``
  (docs/PROVIDERS.md, section 4). A JWT in ``Authorization`` decides the role as before
  (a legacy JWT key sent in ``apikey`` alone counts as one, as the gateway passes it on);
- checks the JWT in ``Authorization: Bearer`` (HS256, the project's JWT secret); no token means
  the ``anon`` role; a bad one is 401 ``PGRST301``;
- runs the call as the role (a connection pool per role, each connection started with that
  ``role`` and the role's own settings, e.g. anon's ``statement_timeout``, as PostgREST applies
  them; the connection as ``authenticator`` brings its own limits) and calls ``public.<fn>``
  with the body's keys as named arguments, so a call is one statement: atomic, and one round
  trip to Postgres. ``request.jwt.claims`` is not set: no function of this project reads it;
- answers the function's result as JSON, or PostgREST's error JSON (``code``, ``message``,
  ``details``, ``hint``) with the status of PostgREST's SQLSTATE table
  (https://docs.postgrest.org/en/v12/references/errors.html);
- records every RPC it serves, filed under the function's name, readable as the fakes' are
  (tools/fakes/fake_api.py: ``GET /_fake/requests[?key=meta_ingest]``, ``DELETE`` to forget), so
  tests count the database round trips a delivery costs (by the ``traceparent`` lib/db.py forwards).
  Of the headers only ``traceparent`` is recorded (the others hold the key).

A development and test tool: never deployed.

    STANDIN_DB_URL=postgresql://authenticator:...@.../postgres JWT_SECRET=... \
    SUPABASE_SECRET_KEY=sb_secret_... SUPABASE_PUBLISHABLE_KEY=sb_publishable_... \
    python -m tools.stack.rest_standin --port 54321
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import asyncpg

from tools.fakes.fake_api import Request, RequestLog
from tools.stack import jwt

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

KNOWN_ROLES = ("anon", "authenticated", "service_role")

# (SQLSTATE prefix or code, HTTP status), most specific first.
_STATUS_BY_SQLSTATE: tuple[tuple[str, int], ...] = (
    ("23503", 409),
    ("23505", 409),
    ("25006", 405),
    ("53400", 500),
    ("42883", 404),
    ("42P01", 404),
    ("42P17", 500),
    ("P0001", 400),
    ("08", 503),
    ("09", 500),
    ("0L", 403),
    ("0P", 403),
    ("25", 500),
    ("28", 403),
    ("2D", 500),
    ("38", 500),
    ("39", 500),
    ("3B", 500),
    ("40", 500),
    ("53", 503),
    ("54", 500),
    ("55", 500),
    ("57", 500),
    ("58", 500),
    ("F0", 500),
    ("HV", 500),
    ("P0", 500),
    ("XX", 500),
)


def http_status(sqlstate: str, *, role: str) -> int:
    """The HTTP status PostgREST answers for a SQLSTATE."""
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    for prefix, status in _STATUS_BY_SQLSTATE:
        if sqlstate.startswith(prefix):
            return status
    return 400


def _error(code: str, message: str, details: str | None = None, hint: str | None = None) -> bytes:
    return json.dumps({"code": code, "details": details, "hint": hint, "message": message}).encode()


# What the gateway answers for an API key it does not know (no PostgREST code).
INVALID_API_KEY = (401, b'{"message":"Invalid API key"}')


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing beyond asyncpg's own rollback of an open transaction."""


class InvalidApiKey(Exception):
    """The gateway refuses the request's API key."""


# The role's own settings (ALTER ROLE … SET) that a non-superuser may set, which PostgREST
# applies to each request of that role; here they are the session defaults of its pool's
# connections (start-up parameters, so that the pool's RESET ALL keeps them).
_ROLE_SETTINGS_SQL = """
select s.name, s.value
from (
    select split_part(c, '=', 1) as name, substr(c, strpos(c, '=') + 1) as value
    from pg_roles r, unnest(r.rolconfig) c
    where r.rolname = $1
) s
join pg_settings p on p.name = s.name and p.context = 'user'
"""


class RpcApp:
    """The ASGI app. ``functions`` caches each function's argument names and types."""

    def __init__(
        self,
        db_url: str,
        jwt_secret: str,
        *,
        secret_key: str | None = None,
        publishable_key: str | None = None,
    ) -> None:
        self.db_url = db_url
        self.jwt_secret = jwt_secret
        self.api_keys = {
            key: role
            for key, role in ((secret_key, "service_role"), (publishable_key, "anon"))
            if key
        }
        self.pools: dict[str, asyncpg.Pool] = {}
        self.signatures: dict[str, tuple[dict[str, str], bool]] = {}
        self.log = RequestLog()

    async def _pool(self, role: str) -> asyncpg.Pool:
        if role not in self.pools:
            conn = await asyncpg.connect(self.db_url, timeout=5)
            try:
                settings = {
                    row["name"]: row["value"] for row in await conn.fetch(_ROLE_SETTINGS_SQL, role)
                }
            finally:
                await conn.close()
            self.pools[role] = await asyncpg.create_pool(
                self.db_url,
                min_size=1,
                max_size=8,
                timeout=5,
                command_timeout=30,
                server_settings={**settings, "role": role},
                # As PostgREST, no reset query between requests (asyncpg's default costs a round
                # trip on every release, before the answer goes out): each RPC is one
                # autocommitted statement, the functions take transaction-level locks only, and
                # asyncpg still rolls back a connection left in a transaction.
                reset=_keep_session,
            )
        return self.pools[role]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = await self._handle(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for pool in self.pools.values():
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        path: str = scope["path"]
        if path == "/health":
            return 200, b'{"status":"ok"}'
        if path == "/_fake/requests":
            if scope["method"] == "DELETE":
                self.log.requests.clear()
                return 200, b'{"cleared":true}'
            query = dict(parse_qsl(scope.get("query_string", b"").decode()))
            return 200, json.dumps(self.log.listing(query)).encode()
        if not path.startswith("/rest/v1/rpc/"):
            return 404, _error("PGRST125", f"Invalid path specified in request URL: {path}")
        if scope["method"] != "POST":
            return 405, _error("PGRST117", f"Unsupported HTTP method: {scope['method']}")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        authorization, apikey = headers.get("authorization"), headers.get("apikey")
        if authorization is None and apikey and not apikey.startswith("sb_"):
            authorization = f"Bearer {apikey}"  # the gateway passes a legacy key on as the JWT
        try:
            key_role = self._api_key_role(apikey, authorization)
            claims = self._claims(authorization) if key_role is None else {"role": key_role}
        except InvalidApiKey:
            return INVALID_API_KEY
        except jwt.InvalidToken as exc:
            return 401, _error("PGRST301", str(exc))
        role = str(claims.get("role", "anon"))
        if role not in KNOWN_ROLES:
            return 401, _error("22023", f'role "{role}" does not exist')
        raw = await _read_body(receive)
        fn = path.removeprefix("/rest/v1/rpc/")
        traceparent = {"traceparent": headers.get("traceparent", "")}
        self.log.record(Request("POST", path, {}, traceparent, raw), fn)
        try:
            params = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, _error("PGRST102", "Empty or invalid json")
        if not isinstance(params, dict):
            return 400, _error("PGRST102", "Empty or invalid json")
        return await self._call(fn, params, role)

    def _api_key_role(self, apikey: str | None, authorization: str | None) -> str | None:
        """The gateway's part: the role of an opaque ``sb_…`` key, or None when the JWT in
        ``Authorization`` (or its absence) decides; :class:`InvalidApiKey` to refuse."""
        bearer_key = authorization is not None and authorization.startswith("Bearer sb_")
        if bearer_key and not (
            apikey and hmac.compare_digest(f"Bearer {apikey}".encode(), str(authorization).encode())
        ):
            raise InvalidApiKey
        if apikey is None or not apikey.startswith("sb_"):
            return None
        role = self._key_role(apikey)
        if role is None:
            raise InvalidApiKey
        # A JWT beside the key (a signed-in user's) decides the role: the gateway passes it on.
        return role if authorization is None or bearer_key else None

    def _key_role(self, apikey: str) -> str | None:
        for key, role in self.api_keys.items():
            if hmac.compare_digest(apikey.encode(), key.encode()):
                return role
        return None

    def _claims(self, authorization: str | None) -> dict[str, Any]:
        if not authorization:
            return {"role": "anon"}
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise jwt.InvalidToken("JWSError (CompactDecodeError Invalid number of parts)")
        return jwt.decode(token.strip(), secret=self.jwt_secret)

    async def _call(self, fn: str, params: dict[str, Any], role: str) -> tuple[int, bytes]:
        answer: tuple[int, bytes] | None = None
        try:
            pool = await self._pool(role)
            async with pool.acquire() as conn:
                signature = await self._signature(conn, fn)
                if signature is None or not set(params) <= set(signature[0]):
                    keys = ", ".join(sorted(params))
                    return 404, _error(
                        "PGRST202",
                        f"Could not find the function public.{fn}({keys}) in the schema cache",
                        hint="If a new function was created in the database with this name and "
                        "parameters, try reloading the schema cache.",
                    )
                arg_types, returns_set = signature
                args = ", ".join(
                    f'"{name}" := ${i}::text::{arg_types[name]}' for i, name in enumerate(params, 1)
                )
                call = f'public."{fn}"({args})'
                sql = (
                    f"select coalesce(json_agg(r), '[]')::text from {call} r"
                    if returns_set
                    else f"select to_json({call})::text"
                )
                result = await conn.fetchval(sql, *(_as_text(v) for v in params.values()))
                answer = 200, (result or "null").encode()
            return answer
        except asyncpg.PostgresError as exc:
            sqlstate = exc.sqlstate or "XX000"
            return http_status(sqlstate, role=role), _error(
                sqlstate,
                getattr(exc, "message", None) or str(exc),
                getattr(exc, "detail", None),
                getattr(exc, "hint", None),
            )
        except (
            OSError,
            TimeoutError,
            asyncpg.InterfaceError,
            asyncpg.exceptions.InternalClientError,
        ) as exc:
            self.pools.pop(role, None)
            if answer is not None:
                # The call committed; only handing its connection back failed (Postgres is
                # restarting): its result stands.
                return answer
            return 503, _error(
                "PGRST001",
                "Could not connect with the database due to an internal error",
                str(exc) or type(exc).__name__,
            )

    async def _signature(
        self, conn: asyncpg.Connection, fn: str
    ) -> tuple[dict[str, str], bool] | None:
        if fn not in self.signatures:
            row = await conn.fetchrow(
                """
                select p.proargnames as names,
                       array(select format_type(t, null) from unnest(p.proargtypes) t) as types,
                       p.proretset as returns_set
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname = 'public' and p.proname = $1
                """,
                fn,
            )
            if row is None:
                return None
            names = list(row["names"] or [])[: len(row["types"])]
            self.signatures[fn] = (dict(zip(names, row["types"], strict=True)), row["returns_set"])
        return self.signatures[fn]


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-url", default=os.environ.get("STANDIN_DB_URL"), required=False)
    parser.add_argument("--jwt-secret", default=os.environ.get("JWT_SECRET", jwt.LOCAL_JWT_SECRET))
    args = parser.parse_args()
    if not args.db_url:
        parser.error("--db-url (or STANDIN_DB_URL) is required")
    app = RpcApp(
        args.db_url,
        args.jwt_secret,
        secret_key=os.environ.get("SUPABASE_SECRET_KEY"),
        publishable_key=os.environ.get("SUPABASE_PUBLISHABLE_KEY"),
    )
    # Idle connections are kept longer than clients keep them (httpx: 5 s), as gateways do: a
    # client never reuses a connection the server is closing at that moment (a ReadError).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
