from __future__ import annotations

from domain.passwords import hash_password, verify_password


def test_a_password_verifies_against_its_own_hash_only() -> None:
    stored = hash_password("correct horse", b"0123456789abcdef")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong horse", stored)
    assert not verify_password("correct horse", "garbage")


def test_the_same_password_with_another_salt_hashes_differently() -> None:
    assert hash_password("pw-pw-pw-pw", b"a" * 16) != hash_password("pw-pw-pw-pw", b"b" * 16)
