"""The stage protocol: identity from env, exit codes 0/1/2, one-line termination messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from extraction_operator.examples.runtime import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_RETRYABLE,
    StageContext,
    StageInputError,
    run_output_dir,
    run_stage,
)


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "EXTRACTION_WORKSPACE": str(tmp_path),
        "EXTRACTION_RUN": "demo",
        "EXTRACTION_RUN_UID": "1234567890ab",
        "TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
        **extra,
    }


def test_context_reads_the_operator_env(tmp_path: Path) -> None:
    context = StageContext.from_env(
        base_env(tmp_path, EXTRACTION_NODE="mentions[2]", SHARD_INDEX="2", SHARD_COUNT="3")
    )
    assert (context.node, context.shard_index, context.shard_count, context.attempt) == (
        "mentions[2]",
        2,
        3,
        1,
    )
    assert context.output_dir == tmp_path / "demo-12345678"


def test_output_dir_without_a_uid_is_the_run_name(tmp_path: Path) -> None:
    assert run_output_dir(tmp_path, "local", "") == tmp_path / "local"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"SHARD_COUNT": "three"}, "SHARD_COUNT='three' is not an integer"),
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT=0 must be at least 1"),
        ({"SHARD_INDEX": "3", "SHARD_COUNT": "3"}, "SHARD_INDEX=3 must be below SHARD_COUNT=3"),
        ({"EXTRACTION_ATTEMPT": "0"}, "EXTRACTION_ATTEMPT=0 must be at least 1"),
    ],
)
def test_malformed_env_is_a_bad_input(
    tmp_path: Path, overrides: dict[str, str], problem: str
) -> None:
    with pytest.raises(StageInputError, match=problem):
        StageContext.from_env(base_env(tmp_path, **overrides))


def test_success_writes_the_summary_as_termination_message(tmp_path: Path) -> None:
    code = run_stage(lambda context: f"did   it\nfor {context.run}", base_env(tmp_path))
    assert code == EXIT_OK
    assert (tmp_path / "termination-log").read_text() == "did it for demo\n"


def test_bad_input_exits_2_with_the_message(tmp_path: Path) -> None:
    def body(context: StageContext) -> str:
        raise StageInputError("chunks.jsonl is missing")

    assert run_stage(body, base_env(tmp_path)) == EXIT_BAD_INPUT
    assert (tmp_path / "termination-log").read_text() == "bad input: chunks.jsonl is missing\n"


def test_an_unexpected_error_is_retryable_and_summarised(tmp_path: Path) -> None:
    def body(context: StageContext) -> str:
        raise KeyError("oops")

    assert run_stage(body, base_env(tmp_path)) == EXIT_RETRYABLE
    assert (tmp_path / "termination-log").read_text() == "internal error: KeyError: 'oops'\n"


def test_long_messages_are_cut_to_fit_the_status(tmp_path: Path) -> None:
    run_stage(lambda context: "x" * 5000, base_env(tmp_path))
    assert len((tmp_path / "termination-log").read_text().strip()) == 1000


@pytest.mark.parametrize(
    ("attempt", "flaky", "expected"),
    [
        ("1", "1", EXIT_RETRYABLE),
        ("2", "1", EXIT_OK),
        ("2", "2", EXIT_RETRYABLE),
        ("1", "0", EXIT_OK),
    ],
)
def test_flaky_failures_follow_the_attempt_number(
    tmp_path: Path, attempt: str, flaky: str, expected: int
) -> None:
    env = base_env(tmp_path, EXTRACTION_ATTEMPT=attempt, FLAKY_FAILURES=flaky)
    assert run_stage(lambda context: "ok", env) == expected


def test_malformed_flaky_setting_is_a_bad_input(tmp_path: Path) -> None:
    env = base_env(tmp_path, FLAKY_FAILURES="often")
    assert run_stage(lambda context: "ok", env) == EXIT_BAD_INPUT
    assert "FLAKY_FAILURES='often' is not an integer" in (tmp_path / "termination-log").read_text()
