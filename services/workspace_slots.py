"""Scratch workspaces kept for the tenant's next session on the same agent: warm slots.

A directory new to an OpenCode server costs it a new instance, and the first prompt there costs
the server ~1.8 CPU-s against ~0.5 in a directory it already serves (measured on the scripted
model: `bench/results/workspace_slots.json`). So a session without a repository works in a slot
of its agent: a directory one session at a time uses, its files removed when that session ends
and a new repository made in it for the next, while the server's instance for it stays warm.
A slot freed while `idle_per_agent` others of the agent are already free is retired instead: its
instance disposed, its directory removed (an instance holds tens of MB of the server's memory).

A burst's first sessions would still each need a new directory, and the server's instance for it
does its expensive set-up on its first prompt (~4 CPU-s on the scripted model; asking it
anything else first saves nothing, measured): so slots are also made ahead, up to the same
number, and warmed by their agent's server before any session needs them (`claim_ahead`, by
`services.slot_warming`).

Claims are files beside the mirrors' locks (the control plane's, never in a directory the tenant
writes in), made with `O_EXCL` (two waves never hold one slot) and naming the session and its
attempt. A claim left by a wave that died is taken back, when the pool would otherwise grow, once
its session has ended or moved on to a later attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from domain.errors import NotFound
from domain.session import Session, SessionStatus
from domain.supervision_policy import DEFAULT_WARM_SLOTS_PER_AGENT
from resources.database import Database, tenant_scope, unit_of_work

SLOT_PREFIX = "slot-"
CLAIM_SUFFIX = ".claim"
WARMING_PREFIX = "warming-"
# A warm-up's claim older than this is its warmer's that died: the slot may be taken back.
WARM_UP_CLAIM_SECONDS = 300.0
# A claim's session in one of these, at the claim's attempt, may still work in the slot.
_MAY_BE_WORKING = frozenset(
    {
        SessionStatus.PENDING,
        SessionStatus.QUEUED,
        SessionStatus.RUNNING,
        SessionStatus.PAUSED,
        SessionStatus.DEGRADED,
    }
)


@dataclass(frozen=True)
class SlotPlace:
    """Where one tenant's slots are: their directories, and their claims (the control plane's)."""

    sessions: Path
    locks: Path

    @property
    def claims(self) -> Path:
        return self.locks / "slots"


@dataclass(frozen=True)
class Claim:
    session_id: str
    attempt: int


def agent_key(agent_id: str | None) -> str:
    """A short name for the agent in its slots' names (ids are not all file-name safe)."""
    return hashlib.sha256((agent_id or "-").encode()).hexdigest()[:10]


def slot_name(agent_id: str | None, number: int) -> str:
    return f"{SLOT_PREFIX}{agent_key(agent_id)}-{number}"


SlotRelease = Literal["kept", "retire", "not_held"]


@dataclass(frozen=True)
class HeldSlot:
    """A slot made ahead, held by its warm-up until released."""

    directory: Path
    claim: Claim


def is_slot(directory: Path) -> bool:
    return directory.name.startswith(SLOT_PREFIX)


class WorkspaceSlots:
    def __init__(
        self, database: Database, idle_per_agent: int = DEFAULT_WARM_SLOTS_PER_AGENT
    ) -> None:
        self._database = database
        self._idle_per_agent = idle_per_agent

    def claim(self, place: SlotPlace, agent_id: str | None, session: Session) -> Path:
        """The directory of a slot of `agent_id` now held by this attempt of `session`: a free
        one already made (warm), else one taken back from a dead wave, else a new one."""
        place.claims.mkdir(parents=True, exist_ok=True, mode=0o700)
        held = Claim(session.id, session.retry_count)
        busy = []
        for name in _made_slots(place, agent_id):
            if _create_claim(place, name, held):
                return place.sessions / name
            busy.append(name)
        for name in self._stale(place, session.tenant_id, busy):
            if _take_back(place, name, held):
                return place.sessions / name
        number = 0
        while (place.sessions / slot_name(agent_id, number)).exists() or not _create_claim(
            place, slot_name(agent_id, number), held
        ):
            number += 1  # made, or claimed by another wave first
        return place.sessions / slot_name(agent_id, number)

    def claim_ahead(self, place: SlotPlace, agent_id: str | None) -> HeldSlot | None:
        """A new slot of `agent_id`, held for its warm-up, while the agent has fewer slots made
        (free or held) than are kept free; None when it has enough."""
        if len(_made_slots(place, agent_id)) >= self._idle_per_agent:
            return None
        place.claims.mkdir(parents=True, exist_ok=True, mode=0o700)
        held = Claim(f"{WARMING_PREFIX}{uuid.uuid4().hex}", 0)
        number = 0
        while (place.sessions / slot_name(agent_id, number)).exists() or not _create_claim(
            place, slot_name(agent_id, number), held
        ):
            number += 1
        return HeldSlot(place.sessions / slot_name(agent_id, number), held)

    def release_ahead(self, place: SlotPlace, slot: HeldSlot, *, warmed: bool) -> None:
        """A warm-up's slot free for sessions; when it was not warmed, removed instead (a slot
        made counts as warm)."""
        path = _claim_path(place, slot.directory.name)
        if _read_claim(path) != slot.claim:
            return
        if not warmed:
            with contextlib.suppress(FileNotFoundError):
                _remove_directory(slot.directory)
        path.unlink(missing_ok=True)

    def release(
        self, place: SlotPlace, directory: Path, session: Session, attempt: int
    ) -> SlotRelease:
        """Free the slot this attempt held, its files removed. "kept": it stays for the next
        session (its instance warm); "retire": enough others are free, the caller disposes of
        its instance, then calls `retire` (it stays claimed meanwhile, so nobody takes it);
        "not_held": the claim is no longer this attempt's (taken back): nothing touched."""
        name = directory.name
        if _read_claim(_claim_path(place, name)) != Claim(session.id, attempt):
            return "not_held"
        _empty_directory(directory)
        if self._free_slots(place, name) >= self._idle_per_agent:
            return "retire"
        _claim_path(place, name).unlink(missing_ok=True)
        return "kept"

    def retire(self, place: SlotPlace, directory: Path, session: Session, attempt: int) -> None:
        """The slot `release` did not keep: its directory and then its claim removed."""
        name = directory.name
        if _read_claim(_claim_path(place, name)) != Claim(session.id, attempt):
            return
        with contextlib.suppress(FileNotFoundError):
            _remove_directory(directory)
        _claim_path(place, name).unlink(missing_ok=True)

    def _free_slots(self, place: SlotPlace, name: str) -> int:
        """Free slots of the same agent as slot `name` (made, not claimed)."""
        made = _numbered_slots(place, name.rsplit("-", 1)[0] + "-")
        return sum(1 for made_name in made if not _claim_path(place, made_name).exists())

    def _stale(self, place: SlotPlace, tenant_id: str, names: Iterable[str]) -> list[str]:
        """The claims among `names` whose attempt can no longer be working in its slot."""
        claims = {name: _read_claim(_claim_path(place, name)) for name in names}
        stale = []
        with tenant_scope(tenant_id), unit_of_work(self._database) as uow:
            for name, claim in claims.items():
                if claim is None:
                    continue
                if claim.session_id.startswith(WARMING_PREFIX):
                    if _claim_age(place, name) > WARM_UP_CLAIM_SECONDS:
                        stale.append(name)
                    continue
                try:
                    holder = uow.sessions.get(claim.session_id)
                except NotFound:
                    stale.append(name)
                    continue
                if holder.retry_count > claim.attempt or holder.status not in _MAY_BE_WORKING:
                    stale.append(name)
        return stale


def _made_slots(place: SlotPlace, agent_id: str | None) -> list[str]:
    """The agent's slot directories, lowest number first."""
    return _numbered_slots(place, slot_name(agent_id, 0)[:-1])


def _numbered_slots(place: SlotPlace, prefix: str) -> list[str]:
    """The slot directories named `prefix` and a number, lowest number first."""
    try:
        names = [e.name for e in os.scandir(place.sessions) if e.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    numbered = [(int(n[len(prefix) :]), n) for n in names if n[len(prefix) :].isdigit()]
    return [name for _, name in sorted(numbered)]


def _claim_path(place: SlotPlace, name: str) -> Path:
    return place.claims / f"{name}{CLAIM_SUFFIX}"


def _claim_age(place: SlotPlace, name: str) -> float:
    try:
        return time.time() - _claim_path(place, name).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _create_claim(place: SlotPlace, name: str, claim: Claim) -> bool:
    try:
        fd = os.open(_claim_path(place, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        file.write(f"{claim.session_id} {claim.attempt}\n")
    return True


def _take_back(place: SlotPlace, name: str, claim: Claim) -> bool:
    """A stale claim replaced by `claim`: moved aside first (one wave wins the rename), then
    made anew (a wave that found the slot free meanwhile may have won it)."""
    aside = place.claims / f"{name}.stale-{claim.session_id}-{claim.attempt}"
    try:
        os.rename(_claim_path(place, name), aside)
    except FileNotFoundError:
        return False
    aside.unlink(missing_ok=True)
    return _create_claim(place, name, claim)


def _read_claim(path: Path) -> Claim | None:
    try:
        session_id, attempt = path.read_text().split()
        return Claim(session_id, int(attempt))
    except (FileNotFoundError, ValueError):
        return None


def _empty_directory(directory: Path) -> None:
    """Everything in `directory` removed, the directory kept; a link planted in its place (its
    parent may be the tenant's) is not followed."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError, OSError):
        with contextlib.suppress(OSError):
            if directory.is_symlink():
                directory.unlink()
        return
    try:
        for name in os.listdir(fd):
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _remove_directory(directory: Path) -> None:
    if directory.is_symlink():
        directory.unlink()
        return
    shutil.rmtree(directory)
