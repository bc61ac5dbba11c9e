"""A session's result lists only the files its own tools touched, whatever else the shared
workspace diff shows (another session's, or another tenant's, files)."""

from __future__ import annotations

from domain.metrics import SessionMetrics
from resources.opencode.models import FileDiff, Message, MessageInfo
from services.turn_tracker import TurnTracker


def tool_part(tool: str, path: str) -> dict[str, object]:
    state = {"status": "completed", "input": {"filePath": path}}
    return {"type": "tool", "tool": tool, "state": state}


def test_result_keeps_only_the_sessions_own_files() -> None:
    tracker = TurnTracker(base=SessionMetrics())
    tracker.messages = [
        Message(info=MessageInfo(id="msg_1", role="user")),
        Message(
            info=MessageInfo(
                id="msg_2", role="assistant", path={"cwd": "/srv/ws", "root": "/srv/ws"}
            ),
            parts=[tool_part("write", "/srv/ws/docs/mine.md"), {"type": "text", "text": "done"}],
        ),
    ]
    tracker.diff = [
        FileDiff(file="docs/mine.md", additions=3, status="added"),
        FileDiff(file="reports/other-tenant.md", additions=9, status="added"),
        FileDiff(file="mine.md", additions=1, status="added"),  # same name, other folder
    ]
    result = tracker.result()
    assert [f["file"] for f in result["files"]] == ["docs/mine.md"]
    assert result["files_changed"] == 1 and result["additions"] == 3
    assert result["text"] == "done"


def test_no_tools_no_files() -> None:
    tracker = TurnTracker(base=SessionMetrics())
    tracker.diff = [FileDiff(file="someone-else.md", additions=1)]
    assert tracker.result()["files"] == []


def test_files_written_but_not_in_the_diff_yet_are_pending() -> None:
    """OpenCode computes a session's diff after it goes idle: a file its own tools wrote but the
    diff does not list yet is worth waiting for; a file it only read is not."""
    tracker = TurnTracker(base=SessionMetrics())
    tracker.messages = [
        Message(
            info=MessageInfo(id="msg_2", role="assistant", path={"cwd": "/ws", "root": "/ws"}),
            parts=[
                tool_part("read", "/ws/README.md"),
                tool_part("write", "/ws/a.md"),
                tool_part("edit", "/ws/b.md"),
            ],
        ),
    ]
    assert tracker.diff_pending() == {"a.md", "b.md"}
    tracker.diff = [FileDiff(file="a.md", additions=1, status="added")]
    assert tracker.diff_pending() == {"b.md"}
    tracker.diff.append(FileDiff(file="b.md", additions=1, status="modified"))
    assert tracker.diff_pending() == set()


def test_written_files_the_diff_never_listed_come_from_the_tool_calls() -> None:
    """Sessions sharing a workspace can see the server's diff credit a file to another session:
    a file this session's own write/edit tools changed is then reported from the tool call."""
    write = {
        "type": "tool",
        "tool": "write",
        "state": {
            "status": "completed",
            "input": {"filePath": "/ws/new.md", "content": "one\ntwo\n"},
            "metadata": {"exists": False},
        },
    }
    edit = {
        "type": "tool",
        "tool": "edit",
        "state": {
            "status": "completed",
            "input": {"filePath": "/ws/old.md"},
            "metadata": {"filediff": {"additions": 2, "deletions": 1}},
        },
    }
    tracker = TurnTracker(base=SessionMetrics())
    tracker.messages = [
        Message(
            info=MessageInfo(id="msg_2", role="assistant", path={"cwd": "/ws", "root": "/ws"}),
            parts=[write, edit],
        ),
    ]
    tracker.diff = [FileDiff(file="elsewhere.md", additions=5, status="added")]
    files = tracker.result()["files"]
    assert files == [
        {"file": "new.md", "status": "added", "additions": 2, "deletions": 0},
        {"file": "old.md", "status": "modified", "additions": 2, "deletions": 1},
    ]
    assert tracker.result()["files_changed"] == 2
