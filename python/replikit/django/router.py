"""The database router: writes to the primary alias, reads where replikit sends them."""

from __future__ import annotations

from typing import Any, Optional

from .state import get_config, get_state


class ReplikitRouter:
    """DATABASE_ROUTERS = ["replikit.django.ReplikitRouter"]: writes go to REPLIKIT['PRIMARY'];
    each read goes to the alias of the node that the routing core picks for the current
    request's session and consistency (a replica that has what the session needs and is not
    lagging, else the primary). Migrations run on the primary only (replicas follow it)."""

    def db_for_read(self, model: Any, **hints: Any) -> Optional[str]:
        return get_state().alias_for_read()

    def db_for_write(self, model: Any, **hints: Any) -> Optional[str]:
        return get_state().alias_for_write()

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> Optional[bool]:
        aliases = get_config().node_of
        if obj1._state.db in aliases and obj2._state.db in aliases:
            return True  # one database, replicated
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: Optional[str] = None,
                      **hints: Any) -> Optional[bool]:
        if db in get_config().replicas:
            return False
        return None
