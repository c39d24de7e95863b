"""Keep a Cliniko account in a database, incrementally, deletions included.

::

    from cliniko_async.mirror import Mirror

    async with Cliniko(...) as cliniko, Mirror(cliniko, "sqlite:///cliniko.db") as mirror:
        result = await mirror.run()
        async for change in mirror.changes(since=0):
            print(change.kind, change.resource, change.id)

See the README, "Mirror".
"""

from ._changes import Change, ChangeFeed, ChangeKind
from ._cursors import CursorState
from ._engine import Mirror, MirrorResult, Progress, ResourceResult, open_store
from ._plan import ResourcePlan, plan
from ._postgres import PostgresStore
from ._sqlite import Counts, SQLiteStore

__all__ = [
    "Change",
    "ChangeFeed",
    "ChangeKind",
    "Counts",
    "CursorState",
    "Mirror",
    "PostgresStore",
    "MirrorResult",
    "Progress",
    "ResourcePlan",
    "ResourceResult",
    "SQLiteStore",
    "open_store",
    "plan",
]
