from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehass.core.crypto import DecryptionError, Keyring, derived_key, parse_keys


def _key(kid: str) -> tuple[str, bytes]:
    return kid, os.urandom(32)


OLD, NEW = _key("k1"), _key("k2")


@given(st.text(max_size=600))
def test_round_trip_and_no_plaintext_at_rest(text):
    ring = Keyring((NEW,))
    token = ring.encrypt(text, context="appointments.reason")
    assert ring.decrypt(token, context="appointments.reason") == text
    if len(text) >= 4:
        assert text not in token


def test_same_plaintext_encrypts_differently_each_time():
    ring = Keyring((NEW,))
    assert ring.encrypt("1990-04-01", context="c") != ring.encrypt("1990-04-01", context="c")


def test_a_value_moved_to_another_column_does_not_decrypt():
    ring = Keyring((NEW,))
    token = ring.encrypt("1990-04-01", context="patients.date_of_birth")
    with pytest.raises(DecryptionError):
        ring.decrypt(token, context="appointments.reason")


def test_tampering_is_detected():
    ring = Keyring((NEW,))
    token = ring.encrypt("secret", context="c")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionError):
        ring.decrypt(tampered, context="c")


def test_rotation_new_key_encrypts_old_keys_still_decrypt():
    before = Keyring((OLD,))
    token = before.encrypt("x", context="c")
    after = Keyring((NEW, OLD))
    assert after.decrypt(token, context="c") == "x"
    assert not after.is_current(token)
    assert after.is_current(after.encrypt("x", context="c"))
    with pytest.raises(DecryptionError):
        Keyring((NEW,)).decrypt(token, context="c")  # the old key was retired too early


def test_parse_keys():
    raw = base64.urlsafe_b64encode(b"k" * 32).decode()
    assert parse_keys(f"new:{raw}, old:{raw}") == [("new", b"k" * 32), ("old", b"k" * 32)]
    for bad in ("", "nokey", f"bad-id:{raw}", "k1:c2hvcnQ="):
        with pytest.raises(ValueError):
            parse_keys(bad)


def test_derived_development_key_is_stable():
    assert derived_key("s" * 40) == derived_key("s" * 40)
    assert derived_key("s" * 40) != derived_key("t" * 40)
