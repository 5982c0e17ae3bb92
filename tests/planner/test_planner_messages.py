"""Secrets are scrubbed and messages bounded without breaking UTF-8."""

from __future__ import annotations

import pytest

from extraction_operator.planner.messages import clean_message, scrub, truncate_utf8


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("openai error with key sk-abcdefghijklmnop1234", "abcdefghijklmnop1234"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9"),
        ("connect failed password=hunter22 host=db", "hunter22"),
        ("config api_key: 123456abcdef", "123456abcdef"),
        ('{"apiKey": "zzzsecretzzz"}', "zzzsecretzzz"),
        ("aws AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("postgres://admin:s3cr3t@db:5432/x", "s3cr3t"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert "***" in cleaned


def test_ordinary_text_is_kept() -> None:
    text = "ValueError: chunk 12 has no sentences (exit 3)"
    assert scrub(text) == text


def test_truncation_respects_bytes_and_characters() -> None:
    text = "é" * 1000  # two bytes each
    cut = truncate_utf8(text, 101)
    assert len(cut.encode("utf-8")) <= 101
    cut.encode("utf-8").decode("utf-8")  # still valid UTF-8
    assert cut.endswith("…")


def test_clean_message_keeps_the_tail_within_one_kib() -> None:
    text = "start " + "x" * 3000 + " Traceback: the real error"
    cleaned = clean_message(text)
    assert cleaned is not None
    assert len(cleaned.encode("utf-8")) <= 1024
    assert cleaned.endswith("the real error")


def test_clean_message_of_nothing_is_none() -> None:
    assert clean_message(None) is None
    assert clean_message("   \n") is None
