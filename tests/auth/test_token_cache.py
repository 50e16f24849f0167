"""The signer's memory of verified tokens: bounded, and never a way around the times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ehass.core.tokens import AccessClaims, InvalidToken, TokenSigner

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _claims(session_id: str = "abc") -> AccessClaims:
    return AccessClaims(
        user_id=7,
        session_id=session_id,
        role="patient",
        patient_id=3,
        doctor_id=None,
        expires_at=NOW + timedelta(minutes=15),
    )


def _signer(**kwargs) -> TokenSigner:
    return TokenSigner(secret="s" * 48, issuer="ehass", audience="ehass-api", **kwargs)


def test_a_remembered_token_still_expires_by_the_clock():
    signer = _signer()
    token = signer.issue(_claims(), now=NOW)
    assert signer.verify(token, now=NOW) == _claims()
    assert signer.verify(token, now=NOW + timedelta(minutes=14)) == _claims()
    with pytest.raises(InvalidToken):
        signer.verify(token, now=NOW + timedelta(minutes=15))


def test_a_remembered_token_is_not_valid_before_it_was_issued():
    signer = _signer()
    token = signer.issue(_claims(), now=NOW)
    signer.verify(token, now=NOW)
    with pytest.raises(InvalidToken):
        signer.verify(token, now=NOW - timedelta(minutes=5))


def test_a_changed_token_is_checked_afresh():
    signer = _signer()
    token = signer.issue(_claims(), now=NOW)
    signer.verify(token, now=NOW)
    header, payload, signature = token.split(".")
    tampered = ".".join(
        [header, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")]
    )
    with pytest.raises(InvalidToken):
        signer.verify(tampered, now=NOW)


def test_the_memory_is_bounded_and_drops_the_least_recently_used():
    signer = _signer(max_verified=3)
    tokens = [signer.issue(_claims(f"s{n}"), now=NOW) for n in range(5)]
    for token in tokens:
        signer.verify(token, now=NOW)
    assert list(signer._verified) == tokens[2:]
    signer.verify(tokens[2], now=NOW)  # used again: now the most recent
    signer.verify(tokens[0], now=NOW)
    assert list(signer._verified) == [tokens[4], tokens[2], tokens[0]]


def test_a_refused_token_is_not_remembered():
    signer = _signer()
    other = TokenSigner(secret="x" * 48, issuer="ehass", audience="ehass-api")
    with pytest.raises(InvalidToken):
        signer.verify(other.issue(_claims(), now=NOW), now=NOW)
    assert not signer._verified
