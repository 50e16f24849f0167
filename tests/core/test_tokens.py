from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from ehass.core.tokens import AccessClaims, InvalidToken, TokenSigner, token_hash

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SIGNER = TokenSigner(secret="s" * 40, issuer="ehass", audience="ehass-api")
CLAIMS = AccessClaims(
    user_id=7,
    session_id="abc",
    role="patient",
    patient_id=3,
    doctor_id=None,
    expires_at=NOW + timedelta(minutes=15),
)


def test_round_trip():
    token = SIGNER.issue(CLAIMS, now=NOW)
    assert SIGNER.verify(token, now=NOW) == CLAIMS


def test_expired_and_future_tokens_are_refused():
    token = SIGNER.issue(CLAIMS, now=NOW)
    with pytest.raises(InvalidToken):
        SIGNER.verify(token, now=NOW + timedelta(minutes=15))
    with pytest.raises(InvalidToken):
        SIGNER.verify(token, now=NOW - timedelta(minutes=5))


@pytest.mark.parametrize(
    "signer",
    [
        TokenSigner(secret="x" * 40, issuer="ehass", audience="ehass-api"),
        TokenSigner(secret="s" * 40, issuer="someone-else", audience="ehass-api"),
        TokenSigner(secret="s" * 40, issuer="ehass", audience="another-api"),
    ],
)
def test_foreign_secret_issuer_or_audience_is_refused(signer):
    with pytest.raises(InvalidToken):
        SIGNER.verify(signer.issue(CLAIMS, now=NOW), now=NOW)


def _payload(**changes):
    payload = {
        "sub": "7",
        "sid": "abc",
        "role": "patient",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 900,
        "iss": "ehass",
        "aud": "ehass-api",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


@pytest.mark.parametrize("missing", ["sub", "sid", "role", "iat", "exp", "iss", "aud"])
def test_every_claim_is_required(missing):
    token = jwt.encode(_payload(**{missing: None}), "s" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken):
        SIGNER.verify(token, now=NOW)


def test_algorithm_is_pinned():
    unsigned = jwt.encode(_payload(), key=None, algorithm="none")
    with pytest.raises(InvalidToken):
        SIGNER.verify(unsigned, now=NOW)
    hs512 = jwt.encode(_payload(), "s" * 40, algorithm="HS512")
    with pytest.raises(InvalidToken):
        SIGNER.verify(hs512, now=NOW)


def test_refresh_tokens_are_stored_as_sha256():
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
