"""`bin/cli doctor`: every setting and dependency checked the way the programs will use them.

One line per check; a failure names the setting or the command that fixes it. A check whose
prerequisite failed (the topic, when Kafka is unreachable) is not run: its cause is already named.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("web", "pg_listener", "kafka_cleaner", "consistency_sampler")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.name:26} {self.detail}"
        return f"FAIL  {self.name:26} {self.detail}; fix: {self.fix}"


def _error(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def check_rules(settings) -> list[Check]:
    """The rules file's form (the tables and columns are checked with Postgres, below)."""
    from citycache import rules as rules_file

    try:
        found = rules_file.load(settings.invalidation_rules)
    except rules_file.BadRules as exc:
        return [Check("rules", False, str(exc.code).removeprefix("rules: "), "the rule it names, in INVALIDATION_RULES")]
    return [Check("rules", True, f"{settings.invalidation_rules}: {len(found.rules)} rule(s): "
                                 f"{', '.join(found.tables)}; prefixes {', '.join(found.prefixes)}")]


def check_postgres(settings) -> list[Check]:
    from citycache import rules as rules_file
    from citycache import tables
    from citycache.runtime.clients import pg_connect
    from ops import schema

    url = urlsplit(settings.database_url)
    where = f"{url.hostname}:{url.port or 5432}{url.path}"
    try:
        conn = pg_connect(settings, autocommit=True, application_name="ops.cli doctor")
    except Exception as exc:
        return [Check("postgres", False, f"cannot connect to {where}: {_error(exc)}",
                      "DATABASE_URL (host, port, user, password, database)")]
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            checks = [Check("postgres", True, f"connected to {where} (PostgreSQL {cur.fetchone()[0]})")]
            try:
                found = rules_file.load(settings.invalidation_rules)
            except rules_file.BadRules:  # the rules line names it; nothing here can be checked without them
                return checks
            try:
                tables.describe(conn, found)
            except rules_file.BadRules as exc:
                return checks + [Check("rules.tables", False, str(exc.code).removeprefix("rules: "),
                                       "create the table or column, or fix the rule it names")]
            checks.append(Check("rules.tables", True, f"{', '.join(found.tables)} present with the rules' columns"))
            absent = schema.missing(conn, settings, found)
            checks.append(Check("postgres.triggers", not absent,
                                "outbox, trigger functions and triggers of every rule present" if not absent
                                else f"missing: {', '.join(absent)}", "bin/cli schema install"))
            cur.execute("SHOW track_commit_timestamp")
            tracked = cur.fetchone()[0] == "on"
            checks.append(Check("postgres.commit_times", True, "track_commit_timestamp on" if tracked else
                                "track_commit_timestamp off: latencies count from the trigger, not the commit"))
            if getattr(settings, "capture_mode", "trigger") == "logical":  # logical decoding needs it
                cur.execute("SHOW wal_level")
                level = cur.fetchone()[0]
                checks.append(Check("postgres.wal_level", level == "logical", f"wal_level {level}",
                                    "ALTER SYSTEM SET wal_level = logical; then restart Postgres"))
            return checks
    finally:
        conn.close()


def check_kafka(settings) -> list[Check]:
    from citycache.runtime.clients import kafka_admin
    from citycache.events import TOPIC

    servers = settings.kafka_bootstrap_servers
    try:
        admin = kafka_admin(settings, timeout_ms=3000)
    except Exception as exc:
        return [Check("kafka", False, f"no broker answers at {servers}: {_error(exc)}", "KAFKA_BOOTSTRAP_SERVERS")]
    try:
        checks = [Check("kafka", True, f"connected to {servers}")]
        (topic,) = admin.describe_topics([TOPIC])
        partitions = topic.get("partitions") or []
        if topic.get("error_code") or not partitions:
            return checks + [Check("kafka.topic", False, f"no topic {TOPIC}",
                                   f"supervisorctl start pg_listener (it creates {TOPIC} with "
                                   f"KAFKA_TOPIC_PARTITIONS={settings.kafka_topic_partitions} partitions)")]
        leaderless = [p["partition_index"] for p in partitions if p["leader_id"] < 0]
        replication = min(len(p["replica_nodes"]) for p in partitions)
        detail = f"{TOPIC}: {len(partitions)} partitions, replication {replication}"
        if len(partitions) != settings.kafka_topic_partitions:
            detail += f" (KAFKA_TOPIC_PARTITIONS says {settings.kafka_topic_partitions}; the topic's count rules)"
        checks.append(Check("kafka.topic", not leaderless, detail + (f"; no leader for {leaderless}" if leaderless else ""),
                            "the brokers holding those partitions are down: start them"))
        group = settings.kafka_consumer_group
        described = admin.describe_groups([group]).get(group) or {}
        members, state = len(described.get("members") or []), described.get("group_state", "unknown")
        checks.append(Check("kafka.consumer_group", members > 0, f"group {group}: {state}, {members} member(s)",
                            f"supervisorctl start kafka_cleaner (KAFKA_CONSUMER_GROUP={group})"))
        return checks
    except Exception as exc:
        return checks + [Check("kafka.topic", False, f"describing {TOPIC} or its group failed: {_error(exc)}",
                               "KAFKA_BOOTSTRAP_SERVERS must list this cluster's brokers")]
    finally:
        admin.close()


def check_redis(settings) -> list[Check]:
    import redis

    from citycache.runtime.clients import redis_client

    url = urlsplit(settings.redis_url)
    where = f"{url.hostname}:{url.port or 6379}{url.path}"
    node = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)  # the node named
    try:
        try:
            info = node.info()
        except Exception as exc:
            return [Check("redis", False, f"cannot reach {where}: {_error(exc)}", "REDIS_URL (host, port, password, db)")]
        replicas = info.get("connected_slaves", 0)
        checks = [Check("redis", True, f"connected to {where} (Redis {info['redis_version']}, {info['role']}, "
                                       f"{replicas} replica(s))")]
        cluster = info.get("cluster_enabled") == 1
        if cluster != settings.redis_cluster:
            checks.append(Check("redis.cluster", False, f"{where} is {'a cluster node' if cluster else 'standalone'}, "
                                f"REDIS_CLUSTER={str(settings.redis_cluster).lower()}",
                                f"REDIS_CLUSTER={str(cluster).lower()}, or a REDIS_URL of the other kind"))
            return checks
        if cluster:
            state = node.execute_command("CLUSTER INFO")
            state = state.decode() if isinstance(state, bytes) else str(state)
            healthy = "cluster_state:ok" in state
            checks.append(Check("redis.cluster", healthy, "cluster_state ok" if healthy else "cluster_state fail",
                                "every hash slot needs a reachable primary: redis-cli --cluster check"))
        else:
            checks.append(Check("redis.cluster", True, "standalone, as REDIS_CLUSTER=false says"))
        client = redis_client(settings)
        probe = f"city-cache:doctor:{uuid.uuid4().hex}"
        try:
            client.set(probe, b"1", ex=10)
            client.delete(probe)
            checks.append(Check("redis.writes", True, "writes accepted"))
        except Exception as exc:
            checks.append(Check("redis.writes", False, f"a write was refused: {_error(exc)}",
                                "REDIS_URL must name the primary (a replica is read-only; min-replicas-to-write "
                                "refuses writes while replicas are missing)"))
        finally:
            client.close()
        return checks
    finally:
        node.close()


def check_s3(settings) -> list[Check]:
    from minio.error import S3Error

    from citycache.runtime.clients import s3_client

    where, bucket = settings.s3_endpoint, settings.s3_bucket
    try:
        present = s3_client(settings, retries=0, read_timeout=5).bucket_exists(bucket)
    except S3Error as exc:
        return [Check("s3", False, f"{where} refused the credentials ({exc.code})", "S3_ACCESS_KEY, S3_SECRET_KEY")]
    except Exception as exc:
        return [Check("s3", False, f"cannot reach {where}: {_error(exc)}", "S3_ENDPOINT, S3_SECURE")]
    return [Check("s3", True, f"connected to {where}, credentials accepted"),
            Check("s3.bucket", present, f"bucket {bucket} " + ("present" if present else "missing"),
                  f"S3_BUCKET, or create it: bin/cli load (uploads the sample images into {bucket})")]


def check_supervisord(settings) -> list[Check]:
    conf = ROOT / "supervisord.conf"
    ctl = Path(sys.executable).with_name("supervisorctl")
    result = subprocess.run([str(ctl), "-c", str(conf), "status"], capture_output=True, text=True, timeout=30)
    states = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if len(line.split()) > 1}
    if not set(PROGRAMS) & set(states):
        return [Check("supervisord", False, f"not running for {conf} ({result.stdout.strip()[:120]})",
                      "systemctl start city-cache (a VM install), or ops/app.sh start (a clone)")]
    checks = [Check("supervisord", True, f"running ({conf})")]
    for program in PROGRAMS:
        state = states.get(program, "absent")
        checks.append(Check(f"supervisord.{program}", state == "RUNNING", state,
                            f"supervisorctl start {program}; its log: supervisorctl tail {program}"))
    if states.get("web") == "RUNNING":
        checks.append(check_http(settings))
    return checks


def check_http(settings) -> Check:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{settings.http_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # 503 names a dependency down: the checks above say which
        status = exc.code
    except Exception as exc:
        return Check("web.http", False, f"nothing answers {url}: {_error(exc)}",
                     "HTTP_PORT must be the port web binds; supervisorctl tail web")
    return Check("web.http", True, f"{url} answers {status}")


def check_log_dir(settings) -> list[Check]:
    path = Path(settings.log_dir)
    return [Check("log_dir", path.is_dir(), f"{path.resolve()} " + ("present" if path.is_dir() else "missing"),
                  "LOG_DIR: create the directory, writable by the service's user")]


CHECKS = (check_rules, check_postgres, check_kafka, check_redis, check_s3, check_supervisord, check_log_dir)


def run(settings) -> list[Check]:
    checks = []
    for check in CHECKS:
        try:
            checks += check(settings)
        except Exception as exc:  # a check must never hide the others
            checks.append(Check(check.__name__.removeprefix("check_"), False, _error(exc), "see the error"))
    return checks


def main(settings, *, as_json: bool = False) -> int:
    return report([Check("settings", True, "valid")] + run(settings), as_json=as_json)


def report(checks: list[Check], *, as_json: bool = False) -> int:
    failed = [c for c in checks if not c.ok]
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [{**asdict(c), "fix": "" if c.ok else c.fix} for c in checks]},
                         indent=2))
    else:
        print("\n".join(c.line() for c in checks))
        print(f"{len(checks)} checks, {len(failed)} failed")
    return 1 if failed else 0
