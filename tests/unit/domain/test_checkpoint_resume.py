"""A retried attempt starts from the last checkpoint an earlier attempt recorded."""

from domain.checkpoint import (
    STEP_TEXT_MAX,
    Checkpoint,
    last_checkpoint_before,
    prompt_for_attempt,
    step_checkpoint_data,
)


def _checkpoint(sequence: int, attempt: int, text: str = "", files=()) -> Checkpoint:
    data = step_checkpoint_data(
        attempt=attempt,
        message_id=f"msg-{sequence}",
        text=text,
        files_changed=list(files),
        tokens_in=10 * sequence,
        tokens_out=sequence,
    )
    return Checkpoint(sequence=sequence, data=data)


def test_a_first_attempt_gets_the_prompt_unchanged() -> None:
    assert prompt_for_attempt("Add a README", [], attempt=0) == "Add a README"


def test_a_retry_carries_the_last_checkpoint_of_the_earlier_attempt() -> None:
    checkpoints = [
        _checkpoint(1, 0, "Read the code.", []),
        _checkpoint(2, 0, "Wrote the intro.", ["README.md"]),
    ]
    prompt = prompt_for_attempt("Add a README", checkpoints, attempt=1)
    assert prompt.startswith("Add a README\n")
    assert "checkpoint #2" in prompt
    assert "README.md" in prompt
    assert "Wrote the intro." in prompt


def test_checkpoints_of_the_current_attempt_are_not_its_starting_point() -> None:
    checkpoints = [_checkpoint(1, 0, "first"), _checkpoint(2, 1, "second try")]
    assert last_checkpoint_before(checkpoints, attempt=1).sequence == 1
    assert last_checkpoint_before(checkpoints, attempt=2).sequence == 2
    assert last_checkpoint_before(checkpoints, attempt=0) is None


def test_a_step_text_is_clipped_and_files_listed_once() -> None:
    data = step_checkpoint_data(
        attempt=0,
        message_id="m",
        text="x" * (STEP_TEXT_MAX + 10),
        files_changed=["b.py", "a.py", "b.py"],
        tokens_in=1,
        tokens_out=2,
    )
    assert len(data["text"]) == STEP_TEXT_MAX
    assert data["files_changed"] == ["a.py", "b.py"]


def test_a_step_text_is_scrubbed_of_secrets_before_it_is_clipped() -> None:
    # A key that straddles the bound would leave its first characters unmatched if clipped first.
    key = "sk-live-" + "a1B2c3D4e5" * 3
    text = "x " * ((STEP_TEXT_MAX - 12) // 2) + key
    data = step_checkpoint_data(
        attempt=0, message_id="m", text=text, files_changed=[], tokens_in=0, tokens_out=0
    )
    assert "sk-live" not in data["text"] and "a1B2" not in data["text"]
    assert data["text"][STEP_TEXT_MAX - 12 :] == "[REDACTED:op"  # the placeholder, clipped
    assert len(data["text"]) == STEP_TEXT_MAX


def test_what_the_agent_said_keeps_its_words_and_loses_its_secrets() -> None:
    said = "Set password = hunter2hunter2 in .env and token ghp_" + "A" * 36 + " for CI."
    data = step_checkpoint_data(
        attempt=0, message_id="m", text=said, files_changed=[], tokens_in=0, tokens_out=0
    )
    assert data["text"] == (
        "Set password = [REDACTED:assigned_secret] in .env and token "
        "[REDACTED:github_token] for CI."
    )
