"""Every name the system gives an object in the database, in one place: the outbox, the flag, the
channel, the publication, the trigger functions and triggers, and the names of older versions that
`bin/cli schema install` replaces. The SQL files in db/ take them as placeholders."""
from __future__ import annotations

import hashlib

# DESIGN.md's contract: writers wake pg_listener on this channel; for city the payload is the code.
CHANNEL = "city_updates"
# One row per distinct set of key-column values a statement changed: (tbl, vals); vals NULL = TRUNCATE.
OUTBOX = "citycache_outbox"
# 1: writers must NOTIFY (a listener may be asleep); 0: a listener is draining (citycache/write/wakeup.py).
FLAG = "citycache_listener_asleep"
# CAPTURE_MODE=logical: the rules' tables, each with the columns its keys need. Version 2's name, kept:
# pgoutput looks a publication up by name in the catalog as of each change it decodes, so a slot with
# changes from before a rename would fail on them.
PUBLICATION = "city_invalidation"
# The version suffix of the trigger functions and triggers (procrastinate's habit): a new shape of
# the outbox is a new version, and install replaces the older one in the same transaction.
VERSION = "v3"
TRIGGER_EVENTS = ("insert", "update", "delete", "truncate")
# Logical messages in the WAL: the heartbeat that keeps an idle slot moving, the benchmarks' barrier.
HEARTBEAT_PREFIX = "city-cache heartbeat"
BARRIER_PREFIX = "city-cache barrier"
# On an index that logical mode made for a replica identity: uninstall drops only indexes with it.
IDENTITY_INDEX_COMMENT = "city-cache: replica identity for CAPTURE_MODE=logical (bin/cli schema uninstall drops it)"

# Version 2 (one table, city): replaced and removed by install, its pending rows moved over.
V2_OUTBOX = "city_outbox"
V2_FLAG = "city_listener_asleep"
V2_FUNCTION = "city_invalidate_v2"
V2_TRIGGERS = tuple(f"city_invalidate_{event}_v2" for event in TRIGGER_EVENTS)
V2_IDENTITY_INDEX = "city_id_countrycode_key"


def trigger_name(event: str) -> str:
    """Trigger names are per table, so every rule's table has the same four."""
    return f"citycache_invalidate_{event}_{VERSION}"


TRIGGERS = tuple(trigger_name(event) for event in TRIGGER_EVENTS)


def function_name(table: str) -> str:
    """The trigger function of one rule's table (`sales.orders` -> citycache_invalidate_sales__orders_v3),
    cut to Postgres' 63 bytes with a hash where the table's name is long."""
    base = table.replace(".", "__")
    name = f"citycache_invalidate_{base}_{VERSION}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"citycache_invalidate_{base.encode()[:24].decode(errors='ignore')}_{digest}_{VERSION}"


FUNCTION_PREFIX = "citycache_invalidate_"
