"""Signature checks: known-answer vectors and properties."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.signatures import (
    CALENDLY_HEADER,
    ELEVENLABS_HEADER,
    InvalidSignature,
    appsecret_proof,
    sign_calendly,
    sign_elevenlabs,
    sign_meta,
    sign_timestamped,
    token_matches,
    verify_calendly,
    verify_elevenlabs,
    verify_meta,
    verify_timestamped,
)

# Not imported from conftest: these unit tests need none of the stack it starts.
FIXTURES = Path(__file__).parent / "fixtures"
VECTORS = json.loads((FIXTURES / "signature_vectors.json").read_text())
META = VECTORS["meta_x_hub_signature_256"]
CALENDLY = VECTORS["calendly"]
ELEVENLABS = VECTORS["elevenlabs"]


def headers_for(body: bytes, secret: str = "s3cret") -> dict[str, str]:
    return {"X-Hub-Signature-256": sign_meta(body, secret=secret)}


def test_sign_meta_known_vector_matches() -> None:
    body = META["raw_body_as_sent_escaped"].encode()
    assert sign_meta(body, secret=META["app_secret"]) == META["header"]


def test_verify_meta_known_vector_accepted() -> None:
    body = META["raw_body_as_sent_escaped"].encode()
    verify_meta(body, {"X-Hub-Signature-256": META["header"]}, secrets=[META["app_secret"]])


def test_verify_meta_reserialized_body_rejected() -> None:
    unescaped = META["wrong_if_reserialized_unescaped"]["body"].encode()
    with pytest.raises(InvalidSignature):
        verify_meta(
            unescaped, {"X-Hub-Signature-256": META["header"]}, secrets=[META["app_secret"]]
        )


def test_verify_meta_lowercase_header_name_accepted() -> None:
    body = b'{"object":"page"}'
    verify_meta(body, {"x-hub-signature-256": sign_meta(body, secret="k")}, secrets=["k"])


def test_verify_meta_rotated_secret_accepted() -> None:
    body = b'{"object":"page"}'
    verify_meta(body, headers_for(body, "new"), secrets=["old", "new"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "zz" * 32,
        "sha256=" + "0" * 63,
        "0" * 64,
        "sha256 = " + "0" * 64,
    ],
)
def test_verify_meta_malformed_header_rejected(value: str | None) -> None:
    headers = {} if value is None else {"X-Hub-Signature-256": value}
    with pytest.raises(InvalidSignature):
        verify_meta(b"{}", headers, secrets=["k"])


def test_verify_meta_no_secret_rejected() -> None:
    body = b"{}"
    with pytest.raises(InvalidSignature):
        verify_meta(body, headers_for(body), secrets=[])


def test_appsecret_proof_known_vector_matches() -> None:
    vector = VECTORS["meta_appsecret_proof"]
    assert (
        appsecret_proof(vector["access_token"], app_secret=vector["app_secret"])
        == (vector["appsecret_proof"])
    )


def test_token_matches_only_exact_token() -> None:
    assert token_matches("abc", expected="abc")
    assert not token_matches("abd", expected="abc")
    assert not token_matches("", expected="abc")
    assert not token_matches(None, expected="abc")


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64))
def test_verify_meta_sign_then_verify_roundtrips(body: bytes, secret: str) -> None:
    verify_meta(body, headers_for(body, secret), secrets=[secret])


@given(
    body=st.binary(min_size=1, max_size=512),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_verify_meta_any_body_mutation_rejected(body: bytes, position: int, flip: int) -> None:
    headers = headers_for(body)
    index = position % len(body)
    mutated = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_meta(mutated, headers, secrets=["s3cret"])


@given(
    body=st.binary(max_size=256),
    position=st.integers(min_value=0),
    char=st.sampled_from("0123456789abcdef"),
)
def test_verify_meta_any_signature_mutation_rejected(body: bytes, position: int, char: str) -> None:
    header = sign_meta(body, secret="s3cret")
    index = len("sha256=") + position % 64
    if header[index] == char:
        char = "f" if char != "f" else "0"
    mutated = header[:index] + char + header[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_meta(body, {"X-Hub-Signature-256": mutated}, secrets=["s3cret"])


@given(value=st.text(max_size=100))
def test_verify_meta_garbage_header_raises_only_invalid_signature(value: str) -> None:
    try:
        verify_meta(b"{}", {"X-Hub-Signature-256": value}, secrets=["s3cret"])
    except InvalidSignature:
        return
    pytest.fail("a garbage header was accepted")


# Timestamped schemes (Calendly v1, ElevenLabs v0). The builder signs BODY at NOW with SECRET; each
# test breaks one thing.

NOW = 1_700_000_000
BODY = b'{"event":"invitee.created","payload":{"email":"a@example.com"}}'
SECRET = "s3cret"
TOLERANCE = 300.0


def digest_for(body: bytes = BODY, *, secret: str = SECRET, timestamp: int = NOW) -> str:
    """The hex part of the v1 header for ``body``."""
    return sign_timestamped(body, secret=secret, timestamp=timestamp, scheme="v1").split("v1=")[1]


GOOD = digest_for()
OTHER = digest_for(secret="other")


def verify(
    body: bytes = BODY,
    value: str | None = None,
    *,
    secrets: Sequence[str] = (SECRET,),
    now: float = NOW,
    tolerance: float = TOLERANCE,
) -> None:
    """verify_timestamped as Calendly (v1) with ``value`` as the header (default: a valid one)."""
    if value is None:
        value = f"t={NOW},v1={GOOD}"
    verify_timestamped(
        body,
        {CALENDLY_HEADER: value},
        header=CALENDLY_HEADER,
        scheme="v1",
        secrets=secrets,
        now=now,
        tolerance=tolerance,
    )


Sign = Callable[..., str]
Verify = Callable[..., None]
PROVIDERS = pytest.mark.parametrize(
    ("sign", "verify_provider", "name", "tolerance"),
    [
        pytest.param(sign_calendly, verify_calendly, CALENDLY_HEADER, 180.0, id="calendly"),
        pytest.param(
            sign_elevenlabs, verify_elevenlabs, ELEVENLABS_HEADER, 1800.0, id="elevenlabs"
        ),
    ],
)


def test_sign_calendly_known_vector_matches() -> None:
    body, timestamp = CALENDLY["raw_body"].encode(), int(CALENDLY["timestamp"])
    value = sign_calendly(body, secret=CALENDLY["signing_key"], timestamp=timestamp)
    assert value == CALENDLY["header"]


def test_verify_calendly_known_vector_accepted() -> None:
    verify_calendly(
        CALENDLY["raw_body"].encode(),
        {CALENDLY_HEADER: CALENDLY["header"]},
        secrets=[CALENDLY["signing_key"]],
        now=float(CALENDLY["timestamp"]),
    )


def test_sign_elevenlabs_known_vector_matches() -> None:
    body, timestamp = ELEVENLABS["raw_body"].encode(), int(ELEVENLABS["timestamp"])
    value = sign_elevenlabs(body, secret=ELEVENLABS["secret"], timestamp=timestamp)
    assert value == ELEVENLABS["header"]


def test_verify_elevenlabs_known_vector_accepted() -> None:
    verify_elevenlabs(
        ELEVENLABS["raw_body"].encode(),
        {ELEVENLABS_HEADER: ELEVENLABS["header"]},
        secrets=[ELEVENLABS["secret"]],
        now=float(ELEVENLABS["timestamp"]),
    )


def test_verify_timestamped_valid_header_accepted() -> None:
    verify()


@pytest.mark.parametrize("secrets", [["old", SECRET], [SECRET, "old"], ["", SECRET]])
def test_verify_timestamped_rotated_secret_accepted(secrets: list[str]) -> None:
    verify(secrets=secrets)


@pytest.mark.parametrize(
    "value",
    [
        f"t={NOW},v1={OTHER},v1={GOOD}",
        f"t={NOW},v1={GOOD},v1={OTHER}",
        f"v1={GOOD},t={NOW}",
        f" v1={OTHER} , t={NOW} ,\tv1={GOOD} ",
        f"t={NOW},v0={OTHER},v1={GOOD},v2=future-scheme",
    ],
    ids=["second", "first", "t-last", "whitespace", "other-schemes-ignored"],
)
def test_verify_timestamped_several_signatures_one_valid_accepted(value: str) -> None:
    verify(value=value)


def test_verify_timestamped_several_signatures_none_valid_rejected() -> None:
    with pytest.raises(InvalidSignature):
        verify(value=f"t={NOW},v1={OTHER},v1={digest_for(secret='third')}")


@pytest.mark.parametrize("name", [CALENDLY_HEADER.lower(), CALENDLY_HEADER.upper()])
def test_verify_calendly_header_name_any_case_accepted(name: str) -> None:
    verify_calendly(BODY, {name: f"t={NOW},v1={GOOD}"}, secrets=[SECRET], now=NOW)


@pytest.mark.parametrize("name", [ELEVENLABS_HEADER.lower(), ELEVENLABS_HEADER.upper()])
def test_verify_elevenlabs_header_name_any_case_accepted(name: str) -> None:
    value = sign_elevenlabs(BODY, secret=SECRET, timestamp=NOW)
    verify_elevenlabs(BODY, {name: value}, secrets=[SECRET], now=NOW)


@PROVIDERS
@pytest.mark.parametrize("edge", ["stale", "future"])
@pytest.mark.parametrize(
    ("past", "accepted"), [(0.0, True), (0.001, False)], ids=["at-boundary", "just-past"]
)
def test_verify_provider_timestamp_at_or_past_default_tolerance(
    sign: Sign,
    verify_provider: Verify,
    name: str,
    tolerance: float,
    edge: str,
    past: float,
    accepted: bool,
) -> None:
    # Stale: the clock has moved on from the signing time; future: it lags behind it.
    now = NOW + tolerance + past if edge == "stale" else NOW - tolerance - past
    headers = {name: sign(BODY, secret=SECRET, timestamp=NOW)}
    if accepted:
        verify_provider(BODY, headers, secrets=[SECRET], now=now)
    else:
        with pytest.raises(InvalidSignature):
            verify_provider(BODY, headers, secrets=[SECRET], now=now)


@pytest.mark.parametrize(
    ("now", "tolerance"),
    [(float("nan"), TOLERANCE), (NOW, float("nan")), (float("inf"), TOLERANCE), (NOW, -1.0)],
)
def test_verify_timestamped_nonsense_clock_rejected(now: float, tolerance: float) -> None:
    with pytest.raises(InvalidSignature):
        verify(now=now, tolerance=tolerance)


def test_verify_calendly_elevenlabs_scheme_rejected() -> None:
    value = sign_elevenlabs(BODY, secret=SECRET, timestamp=NOW)
    with pytest.raises(InvalidSignature, match="No v1 signature"):
        verify_calendly(BODY, {CALENDLY_HEADER: value}, secrets=[SECRET], now=NOW)


def test_verify_elevenlabs_calendly_scheme_rejected() -> None:
    value = sign_calendly(BODY, secret=SECRET, timestamp=NOW)
    with pytest.raises(InvalidSignature, match="No v0 signature"):
        verify_elevenlabs(BODY, {ELEVENLABS_HEADER: value}, secrets=[SECRET], now=NOW)


def test_verify_elevenlabs_calendly_header_name_rejected() -> None:
    value = sign_elevenlabs(BODY, secret=SECRET, timestamp=NOW)
    with pytest.raises(InvalidSignature, match="Missing"):
        verify_elevenlabs(BODY, {CALENDLY_HEADER: value}, secrets=[SECRET], now=NOW)


def signed_t(t: str) -> str:
    """A header signed right for this exact ``t`` text, so only its format can refuse it."""
    digest = hmac.new(SECRET.encode(), t.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


FULLWIDTH_NOW = "".join(chr(0xFF10 + int(digit)) for digit in str(NOW))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("  ", id="blank"),
        pytest.param(f"v1={GOOD}", id="no-t"),
        pytest.param(f"t={NOW},{signed_t(str(NOW))}", id="two-t"),
        pytest.param(signed_t(""), id="t-empty"),
        pytest.param(signed_t("now"), id="t-word"),
        pytest.param(signed_t(f"-{NOW}"), id="t-negative"),
        pytest.param(signed_t(f"+{NOW}"), id="t-plus"),
        pytest.param(signed_t(f"{NOW}.0"), id="t-float"),
        pytest.param(signed_t("1_700_000_000"), id="t-underscores"),
        pytest.param(signed_t(FULLWIDTH_NOW), id="t-fullwidth-digits"),
        pytest.param(signed_t("1e999"), id="t-1e999"),
        pytest.param(signed_t("9" * 5000), id="t-5000-digits"),
        pytest.param(f"t=0{NOW},v1={GOOD}", id="t-leading-zero-not-what-was-signed"),
        pytest.param(signed_t(f" {NOW}"), id="space-after-t-equals"),
        pytest.param(f"t ={NOW},v1={GOOD}", id="space-before-t-equals"),
        pytest.param(f"t={NOW}", id="no-signature"),
        pytest.param(f"t={NOW},v1=", id="signature-empty"),
        pytest.param(f"t={NOW},v1={GOOD[:-1]}", id="signature-short"),
        pytest.param(f"t={NOW},v1={GOOD}0", id="signature-long"),
        pytest.param(f"t={NOW},v1={'zz' * 32}", id="signature-not-hex"),
        pytest.param(f"t={NOW},v1={GOOD.upper()}", id="signature-uppercase"),
        pytest.param(f"t={NOW},v1={GOOD},v1=zz", id="one-malformed-among-several"),
        pytest.param(f"t={NOW},v1={GOOD},", id="trailing-comma"),
        pytest.param(f"t={NOW};v1={GOOD}", id="semicolon"),
        pytest.param(f"t={NOW},sha256={GOOD}", id="other-scheme-only"),
        pytest.param(f"t={NOW},v1={OTHER}", id="wrong-signature"),
    ],
)
def test_verify_timestamped_malformed_header_rejected(value: str | None) -> None:
    headers: dict[str, str] = {} if value is None else {CALENDLY_HEADER: value}
    with pytest.raises(InvalidSignature) as caught:
        verify_timestamped(
            BODY,
            headers,
            header=CALENDLY_HEADER,
            scheme="v1",
            secrets=[SECRET],
            now=NOW,
            tolerance=TOLERANCE,
        )
    assert SECRET not in str(caught.value)
    assert GOOD not in str(caught.value)


@pytest.mark.parametrize("secrets", [[], [""]])
def test_verify_timestamped_no_secret_rejected(secrets: list[str]) -> None:
    # Signed with the empty secret: an empty secret must never verify anything.
    with pytest.raises(InvalidSignature):
        verify(value=f"t={NOW},v1={digest_for(secret='')}", secrets=secrets)


def test_verify_timestamped_wrong_signature_message_leaks_nothing() -> None:
    with pytest.raises(InvalidSignature) as caught:
        verify(value=f"t={NOW},v1={OTHER}")
    assert SECRET not in caught.value.message
    assert GOOD not in caught.value.message


@pytest.mark.parametrize("timestamp", [-1, 10**12])
def test_sign_timestamped_unverifiable_timestamp_raises(timestamp: int) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        sign_timestamped(BODY, secret=SECRET, timestamp=timestamp, scheme="v1")


TIMESTAMPS = st.integers(min_value=0, max_value=10**12 - 1)
SCHEMES = st.sampled_from([("v1", CALENDLY_HEADER), ("v0", ELEVENLABS_HEADER)])


def verify_scheme(body: bytes, value: str, scheme: tuple[str, str], now: int) -> None:
    verify_timestamped(
        body,
        {scheme[1]: value},
        header=scheme[1],
        scheme=scheme[0],
        secrets=[SECRET],
        now=now,
        tolerance=0.0,
    )


@given(
    body=st.binary(max_size=2048),
    secret=st.text(min_size=1, max_size=64),
    timestamp=TIMESTAMPS,
    scheme=SCHEMES,
)
def test_verify_timestamped_sign_then_verify_roundtrips(
    body: bytes, secret: str, timestamp: int, scheme: tuple[str, str]
) -> None:
    value = sign_timestamped(body, secret=secret, timestamp=timestamp, scheme=scheme[0])
    verify_timestamped(
        body,
        {scheme[1]: value},
        header=scheme[1],
        scheme=scheme[0],
        secrets=["not-this-one", secret],
        now=timestamp,
        tolerance=0.0,
    )


@given(
    body=st.binary(min_size=1, max_size=512),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
    timestamp=TIMESTAMPS,
    scheme=SCHEMES,
)
def test_verify_timestamped_any_body_mutation_rejected(
    body: bytes, position: int, flip: int, timestamp: int, scheme: tuple[str, str]
) -> None:
    value = sign_timestamped(body, secret=SECRET, timestamp=timestamp, scheme=scheme[0])
    index = position % len(body)
    mutated = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_scheme(mutated, value, scheme, timestamp)


@given(
    body=st.binary(max_size=256),
    position=st.integers(min_value=0),
    char=st.sampled_from("0123456789abcdef"),
    timestamp=TIMESTAMPS,
    scheme=SCHEMES,
)
def test_verify_timestamped_any_signature_mutation_rejected(
    body: bytes, position: int, char: str, timestamp: int, scheme: tuple[str, str]
) -> None:
    value = sign_timestamped(body, secret=SECRET, timestamp=timestamp, scheme=scheme[0])
    index = len(value) - 64 + position % 64
    if value[index] == char:
        char = "f" if char != "f" else "0"
    mutated = value[:index] + char + value[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_scheme(body, mutated, scheme, timestamp)


@given(body=st.binary(max_size=256), timestamp=TIMESTAMPS, other=TIMESTAMPS, scheme=SCHEMES)
def test_verify_timestamped_any_timestamp_change_rejected(
    body: bytes, timestamp: int, other: int, scheme: tuple[str, str]
) -> None:
    if other == timestamp:
        other = timestamp + 1
    value = sign_timestamped(body, secret=SECRET, timestamp=timestamp, scheme=scheme[0])
    mutated = value.replace(f"t={timestamp},", f"t={other},", 1)
    # ``now`` is the forged timestamp, so only the signature can refuse it.
    with pytest.raises(InvalidSignature):
        verify_scheme(body, mutated, scheme, other)


@given(value=st.text(max_size=200))
def test_verify_timestamped_garbage_header_raises_only_invalid_signature(value: str) -> None:
    try:
        verify(value=value)
    except InvalidSignature:
        return
    pytest.fail("a garbage header was accepted")


PART_NAMES = st.sampled_from(["t", "v1", "v0", "", " t", "T"])
PART_VALUES = st.one_of(
    st.sampled_from([str(NOW), GOOD, OTHER, "", "-1", "1e999", "9" * 5000, FULLWIDTH_NOW]),
    st.text(max_size=70),
)
NEAR_MISS_HEADERS = st.lists(
    st.tuples(PART_NAMES, st.sampled_from(["=", "", "=="]), PART_VALUES).map("".join), max_size=5
).map(",".join)


@given(value=NEAR_MISS_HEADERS, now=st.floats(), tolerance=st.floats())
def test_verify_timestamped_near_miss_header_raises_only_invalid_signature(
    value: str, now: float, tolerance: float
) -> None:
    # Header-like parts, to reach past the first checks; such a header may even be valid.
    with contextlib.suppress(InvalidSignature):
        verify(value=value, now=now, tolerance=tolerance)


@pytest.mark.parametrize("scheme", ["meta", "calendly", "elevenlabs", "elevenlabs_chunks", "token"])
def test_signature_comparison_is_hmac_compare_digest(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """Every comparison of a signature or a token goes through hmac.compare_digest (constant
    time): a spy counts the calls, and a wrong signature is refused after one."""
    import hmac as hmac_module

    import lib.signatures as signatures

    calls: list[tuple[bytes, bytes]] = []
    real = hmac_module.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signatures.hmac, "compare_digest", spy)
    body, now = b'{"x": 1}', 1_700_000_000.0  # a fixed clock: verifiers take ``now``
    if scheme == "meta":
        signatures.verify_meta(
            body, {"X-Hub-Signature-256": signatures.sign_meta(body, secret="s")}, secrets=["s"]
        )
    elif scheme in ("calendly", "elevenlabs"):
        sign = getattr(signatures, f"sign_{scheme}")
        verify = getattr(signatures, f"verify_{scheme}")
        header = (
            signatures.CALENDLY_HEADER if scheme == "calendly" else signatures.ELEVENLABS_HEADER
        )
        verify(body, {header: sign(body, secret="s", timestamp=int(now))}, secrets=["s"], now=now)
    elif scheme == "elevenlabs_chunks":
        header = signatures.sign_elevenlabs(body, secret="s", timestamp=int(now))
        signatures.verify_elevenlabs_chunks(
            [body[:3], body[3:]],
            {signatures.ELEVENLABS_HEADER: header},
            secrets=["s"],
            now=now,
            keep=100,
        )
    else:
        assert signatures.token_matches("t", expected="t")
    assert calls, "no constant-time comparison"
