"""The operator's command line: `python -m ops.cli <command> --help`.

  load            create the schema and load the cities and countries (--reload replaces them), upload the images
  upload-image    put a file into the image bucket
  invalidate      invalidate cache keys by hand (cities_BGR, or BGR for short), through Kafka like a database write
  check           compare every cached key of every resource with the database (exit 1 on a mismatch)
  status          worker heartbeats (the sampler's too), outbox backlog, consumer lag (exit 1 if unhealthy)
  schema          install or uninstall the outbox and triggers on the rules' tables (--dry-run)
  doctor          check every setting and dependency as the programs use them (exit 1 on a failure)
  logs            the API's access log (one line per request) or a program's log, from LOG_DIR (-f follows)
"""
from __future__ import annotations

import argparse
import json
import mimetypes
import re
import sys
import time
from pathlib import Path

from citycache.settings import Settings, SettingsError, get_settings


def cmd_load(settings: Settings, args) -> int:
    from ops import seed

    argv = ["--reload"] * args.reload + ["--skip-images"] * args.skip_images
    return seed.main(argv)


class Progress:
    """A progress bar on stderr for minio's uploads (set_meta, update); silent when not a terminal."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream, self.total, self.done = stream, 0, 0
        self.show = stream.isatty()

    def set_meta(self, object_name: str, total_length: int) -> None:
        self.name, self.total = object_name, total_length

    def update(self, size: int) -> None:
        self.done += size
        if self.show and self.total:
            filled = int(30 * self.done / self.total)
            self.stream.write(f"\r{self.name} [{'#' * filled}{'.' * (30 - filled)}] "
                              f"{self.done / 2**20:.1f}/{self.total / 2**20:.1f} MiB")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def cmd_upload_image(settings: Settings, args) -> int:
    from citycache.runtime.clients import s3_client
    from citycache.read.images import IMAGE_NAME_RULE, valid_image_name

    path = Path(args.path)
    name = args.name or path.name
    if not valid_image_name(name):
        return fail(f"{IMAGE_NAME_RULE}: {name!r}")
    if not path.is_file():
        return fail(f"no such file: {path}")
    content_type = args.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    client = s3_client(settings, read_timeout=300)
    result = client.fput_object(settings.s3_bucket, name, str(path), content_type=content_type, progress=Progress())
    print(f"uploaded {path} as {settings.s3_bucket}/{name} ({path.stat().st_size} bytes, {content_type}, "
          f"etag {result.etag})")
    return 0


def invalidations(rules, wanted: list[str]):
    """The events `bin/cli invalidate` publishes: a key each; a bare country code is its cities_ key
    (the shorthand from before the rules); '*' wipes every rule's prefix. ValueError names a bad one."""
    from citycache import events
    from citycache.read.cities import CITIES
    from citycache.read.codes import BadCode, normalize_code
    from citycache.rules import unusable

    found = []
    for text in wanted:
        if text == "*":
            found.append(events.everything(rules.prefixes, committed_at=time.time()))
            continue
        try:
            key = CITIES.key(normalize_code(text)) if len(text) == 3 else text
        except BadCode:
            key = text
        why = unusable(key) or ("" if rules.covers(key) else "no rule's prefix (" + ", ".join(rules.prefixes) + ")")
        if why:
            raise ValueError(f"{text!r} is not a cache key the rules make: it has {why}")
        found.append(events.Invalidation(key, committed_at=time.time()))
    return found


def cmd_invalidate(settings: Settings, args) -> int:
    from citycache.runtime.startup import checked_rules

    rules = checked_rules(settings, against_database=False)
    try:
        wanted = invalidations(rules, args.keys)
    except ValueError as exc:
        return fail(str(exc))
    shown = ", ".join(event.key or "every key under " + ", ".join(event.prefixes) for event in wanted)
    if args.direct:
        from citycache.runtime.clients import redis_client
        from citycache.write.deletes import invalidate, redis_deleter, wipe

        client = redis_client(settings)
        deleter = redis_deleter(settings, client)  # replicated like the cleaner's deletes
        deleted = invalidate(client, [e.key for e in wanted if e.key is not None], deleter)
        deleted += wipe(client, [p for e in wanted if e.key is None for p in e.prefixes], deleter)
        print(f"deleted {deleted} key(s) directly in Redis: {shown}")
        return 0
    from citycache.write.publisher import PublishError, Publisher

    publisher = Publisher(settings, client_id="ops.cli")
    try:
        publisher.publish(wanted)
    except PublishError as exc:
        return fail(f"Kafka did not acknowledge the invalidation ({exc}); --direct deletes in Redis instead")
    finally:
        publisher.close()
    print(f"published the invalidation of {shown} to Kafka; kafka_cleaner deletes the keys and their leases")
    return 0


def pipeline_state(settings: Settings, pool=None):
    """The pipeline's state as /health and /metrics read it (citycache.pipeline.snapshot), on the
    command's own Postgres connections (`pool`) when it has some."""
    from citycache import pipeline
    from citycache.runtime.clients import redis_client

    own = pool is None
    pool = pool or command_pool(settings)
    admin = pipeline.KafkaAdmin(settings)
    try:
        return pipeline.snapshot(settings, query=pool.query, cache=redis_client(settings, timeout=2.0), admin=admin)
    finally:
        admin.close()
        if own:
            pool.close()


def command_pool(settings: Settings):
    """The command's Postgres sessions: snapshot() reads the backlog and the slot side by side, so two."""
    from citycache.runtime.clients import pg_connect
    from citycache.runtime.pgpool import PgPool

    return PgPool(lambda: pg_connect(settings, application_name="ops.cli"), size=2)


def cmd_check(settings: Settings, args) -> int:
    from citycache.read.consistency import find_mismatches
    from citycache.read.resources import RESOURCES
    from citycache.runtime.clients import redis_client

    pool = command_pool(settings)
    try:
        with pool.connection() as conn:
            mismatches, checked = find_mismatches(redis_client(settings), conn, RESOURCES)
        state = pipeline_state(settings, pool)
    finally:
        pool.close()
    for mismatch in mismatches:
        print(mismatch.describe())
    counts = ", ".join(f"{n} {name}" for name, n in checked.items())
    print(f"{sum(checked.values())} cached keys checked ({counts}), {len(mismatches)} mismatch(es) between the "
          f"cache and the database; outbox backlog {state.outbox_backlog}, consumer lag {state.total_lag}")
    return 1 if mismatches else 0


def status_lines(state) -> list[str]:
    """One aligned line per component: name, up/DOWN (or a figure), and a short reason."""
    from citycache.runtime.heartbeat import WORKERS

    width = max(len(name) for name in (*WORKERS, "consumer lag")) + 1
    lines = []
    for worker, up in state.workers_up().items():
        if up:
            lines.append(f"{worker:{width}} {'up':7} heartbeat {state.workers[worker]:.1f} s ago")
        else:
            reason = f"redis: {short_reason(state.workers_error)}" if state.workers is None else "no heartbeat"
            lines.append(f"{worker:{width}} {'DOWN':7} {cut(reason)}")
    if state.outbox_backlog is None:
        lines.append(f"{'outbox':{width}} {'unknown':7} {cut('postgres: ' + short_reason(state.outbox_error))}")
    else:
        lines.append(f"{'outbox':{width}} {state.outbox_backlog:<7} row(s) waiting for Kafka")
    if state.consumer_lag is None:
        lines.append(f"{'consumer lag':{width}} {'unknown':7} {cut('kafka: ' + short_reason(state.lag_error))}")
    else:
        parts = ", ".join(f"p{p}: {n}" for p, n in sorted(state.consumer_lag.items()))
        lines.append(f"{'consumer lag':{width}} {state.total_lag:<7} message(s) ({parts})")
    return lines


def short_reason(error: str | None) -> str:
    """An error's gist on one line: the server address as host:port, a repeated class name once."""
    line = (error or "unknown error").strip().splitlines()[0]
    line = re.sub(r'connection to server at "([^"]+)" \([^)]*\), port (\d+) failed: ', r"\1:\2 ", line)
    line = re.sub(r"Error \d+ connecting to (\S+)\. ", r"\1 ", line)  # redis-py's wording, same shape
    return re.sub(r"^(\w+): \1: ", r"\1: ", line)


def cut(text: str, width: int = 72) -> str:
    """A status line stays one short line."""
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_status(settings: Settings, args) -> int:
    state = pipeline_state(settings)
    healthy = all(state.workers_up().values()) and None not in (state.outbox_backlog, state.consumer_lag)
    if args.json:
        print(json.dumps({
            "workers": {w: {"up": up, "age_s": (state.workers or {}).get(w)} for w, up in state.workers_up().items()},
            "workers_error": state.workers_error,
            "outbox_backlog": state.outbox_backlog, "outbox_error": state.outbox_error,
            "consumer_lag": state.consumer_lag, "lag_error": state.lag_error, "healthy": healthy}))
    else:
        print("\n".join(status_lines(state)))
    return 0 if healthy else 1


def cmd_schema(settings: Settings, args) -> int:
    import psycopg2

    from citycache.rules import BadRules
    from citycache.runtime.clients import pg_connect
    from citycache.runtime.startup import checked_rules
    from ops import schema

    try:
        rules = checked_rules(settings, against_database=False)  # install checks the tables itself
    except BadRules as exc:
        return fail(str(exc.code))
    conn = pg_connect(settings, autocommit=True, application_name="ops.cli schema")
    try:
        action = schema.install if args.action == "install" else schema.uninstall
        lines = action(conn, settings, rules, dry_run=args.dry_run)
    except schema.SchemaError as exc:
        return fail(str(exc))
    except psycopg2.Error as exc:  # the database refused a statement: nothing of that part was applied
        return fail(f"the database refused it ({type(exc).__name__}): {str(exc).strip()}")
    finally:
        conn.close()
    print("\n".join(lines))
    return 0


def cmd_doctor(settings: Settings, args) -> int:
    from ops import doctor

    return doctor.main(settings, as_json=args.json)


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ops.cli", description="The operator's command line of city-cache.")
    commands = root.add_subparsers(dest="command", required=True, metavar="command")

    load = commands.add_parser("load", help="schema, cities, countries and images (python -m ops.seed)",
                               description="Apply db/schema.sql and install the rules' triggers, load the cities "
                                           "and countries if the tables are empty (or replace them with --reload), "
                                           "upload the sample images.")
    load.add_argument("--reload", action="store_true",
                      help="replace every city and country (TRUNCATE and load, one transaction each)")
    load.add_argument("--skip-images", action="store_true", help="only the database")
    load.set_defaults(run=cmd_load)

    upload = commands.add_parser("upload-image", help="put a file into the image bucket",
                                 description="Upload a file to the S3 bucket; GET /image/<name> serves it.")
    upload.add_argument("path", help="the file to upload")
    upload.add_argument("--name", help="object name (default: the file's name)")
    upload.add_argument("--content-type", help="default: guessed from the object name's extension")
    upload.set_defaults(run=cmd_upload_image)

    invalidate = commands.add_parser(
        "invalidate", help="invalidate cache keys (cities_BGR country_BGR; BGR for short)",
        description="Publish an invalidation event per key to Kafka, as pg_listener does after a write: "
                    "kafka_cleaner deletes the key and its lease, in order with the database's own events for that "
                    "key, and the latency shows in the metrics. With --direct, delete in Redis at once (Kafka down).")
    invalidate.add_argument("keys", nargs="+", metavar="key",
                            help="a cache key a rule makes (cities_BGR, country_BGR); a country code alone (BGR) "
                                 "is its cities_ key; '*' wipes every rule's prefix")
    invalidate.add_argument("--direct", action="store_true", help="delete in Redis now instead of through Kafka")
    invalidate.set_defaults(run=cmd_invalidate)

    check = commands.add_parser("check", help="compare the cache with the database",
                                description="Compare every cached key of every resource (cities_*, country_*) with "
                                            "the database; print each mismatch; exit 1 if there is any.")
    check.set_defaults(run=cmd_check)

    status = commands.add_parser("status", help="heartbeats, outbox backlog, consumer lag",
                                 description="The invalidation pipeline's state; exit 1 when a worker is down or a "
                                             "figure cannot be read.")
    status.add_argument("--json", action="store_true", help="one JSON object instead of text")
    status.set_defaults(run=cmd_status)

    schema = commands.add_parser(
        "schema", help="the outbox and triggers on the rules' tables",
        description="install: apply what invalidation needs (the outbox, and per table in the rules "
                    "(INVALIDATION_RULES) a trigger function and its triggers; with CAPTURE_MODE=logical also the "
                    "replica identities and the publication) to the database of DATABASE_URL, which must have the "
                    "rules' tables; never touches their rows; drops the triggers of tables no longer in the rules; "
                    "safe to run again. uninstall: drop exactly those pieces. Each prints what it did.")
    schema.add_argument("action", choices=["install", "uninstall"])
    schema.add_argument("--dry-run", action="store_true", help="print the SQL it would run and change nothing")
    schema.set_defaults(run=cmd_schema)

    doctor = commands.add_parser(
        "doctor", help="check every setting and dependency",
        description="Check Postgres, Kafka, Redis, the S3 store and supervisord with the settings the programs "
                    "use; one line per check, each failure naming the setting or command that fixes it; exit 1 "
                    "if anything failed.")
    doctor.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    doctor.set_defaults(run=cmd_doctor)

    from ops import logs

    logs.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = get_settings()  # a bad setting stops here with one line naming it
    except SettingsError as exc:
        if args.command != "doctor":
            raise
        from ops import doctor  # a bad setting is doctor's first finding, in its own format

        return doctor.report([doctor.Check("settings", False, str(exc), "the named setting(s), in the "
                                           "environment or the env file")], as_json=args.json)
    return args.run(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
