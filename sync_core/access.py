"""Who may do what. The dashboard hides buttons, but these checks are what actually refuse."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PermissionDeniedError

ADMIN = "admin"
VIEWER = "viewer"


@dataclass(frozen=True)
class Actor:
    """Who triggered an action: a person (e-mail) or a system face (cli, scheduler, api)."""

    name: str
    role: str = VIEWER

    @property
    def can_sync(self) -> bool:
        return self.role == ADMIN


SYSTEM = Actor("system", ADMIN)


def require_admin(actor: Actor, action: str = "sync") -> None:
    if not actor.can_sync:
        raise PermissionDeniedError(
            f"{actor.name} is a viewer; only admins may {action}. Ask an admin for access."
        )
