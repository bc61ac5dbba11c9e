"""The server announces a user message's computed diff; other events are not that."""

from resources.opencode.models import FileDiff, ServerEvent

# As recorded from opencode-ai 1.18.33 (events-errors-retry-permission.sse), after session.idle.
COMPUTED = {
    "type": "message.updated",
    "properties": {
        "sessionID": "ses_df3cee92effecHYt87E1XLqK4u",
        "info": {
            "role": "user",
            "time": {"created": 1795500873638},
            "agent": "build",
            "model": {"providerID": "mock", "modelID": "mock-model"},
            "summary": {
                "diffs": [
                    {
                        "file": "hello.txt",
                        "patch": "@@ -0,0 +1,1 @@\n+hi there\n",
                        "additions": 1,
                        "deletions": 0,
                        "status": "added",
                    }
                ]
            },
            "id": "msg_20c3117a6001rNjD6ww3UkqQXB",
            "sessionID": "ses_df3cee92effecHYt87E1XLqK4u",
        },
    },
}


def test_a_user_message_updated_with_its_summary_carries_the_computed_diff() -> None:
    found = ServerEvent.model_validate(COMPUTED).message_diff
    assert found == (
        "msg_20c3117a6001rNjD6ww3UkqQXB",
        [FileDiff(file="hello.txt", additions=1, deletions=0, status="added")],
    )


def test_a_user_message_without_a_summary_has_no_diff_yet() -> None:
    info = {k: v for k, v in COMPUTED["properties"]["info"].items() if k != "summary"}
    event = {"type": "message.updated", "properties": {"info": info}}
    assert ServerEvent.model_validate(event).message_diff is None


def test_assistant_messages_and_other_events_carry_no_message_diff() -> None:
    info = {**COMPUTED["properties"]["info"], "role": "assistant"}
    assistant = {"type": "message.updated", "properties": {"info": info}}
    session_diff = {"type": "session.diff", "properties": {"sessionID": "s", "diff": []}}
    assert ServerEvent.model_validate(assistant).message_diff is None
    assert ServerEvent.model_validate(session_diff).message_diff is None
