"""Chunking: paragraphs first, whole sentences when a paragraph is too long."""

from __future__ import annotations

from extraction_operator.examples.chunk import (
    make_chunks,
    sample_text,
    split_long,
    split_paragraphs,
)


def test_paragraphs_are_split_on_blank_lines_and_line_breaks_folded() -> None:
    text = "First line\ncontinues here.\n\n  \nSecond   paragraph.\n\n\n"
    assert split_paragraphs(text) == ["First line continues here.", "Second paragraph."]


def test_long_paragraph_splits_between_sentences_only() -> None:
    paragraph = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda."
    pieces = split_long(paragraph, max_chars=40)
    assert pieces == ["Alpha beta gamma. Delta epsilon zeta.", "Eta theta iota. Kappa lambda."]
    assert " ".join(pieces) == paragraph


def test_a_sentence_longer_than_the_limit_stays_whole() -> None:
    sentence = "A single sentence that is much longer than the limit allows."
    assert split_long(sentence, max_chars=10) == [sentence]


def test_chunks_are_numbered_in_order() -> None:
    chunks = make_chunks("One.\n\nTwo.\n\nThree.")
    assert [(c.id, c.index, c.text) for c in chunks] == [
        ("c000", 0, "One."),
        ("c001", 1, "Two."),
        ("c002", 2, "Three."),
    ]


def test_bundled_sample_gives_fifteen_paragraph_chunks() -> None:
    text = sample_text()
    chunks = make_chunks(text)
    assert len(chunks) == 15
    assert [chunk.text for chunk in chunks] == split_paragraphs(text)
    assert chunks[0].text.startswith("Charles Babbage was born in London on 26 December 1791.")
    assert 4000 < len(text) < 10000
