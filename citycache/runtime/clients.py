"""Client factories for Postgres, Redis, Kafka and the S3 store, configured from the settings."""
from __future__ import annotations

import psycopg2
import redis
import urllib3
from redis.cluster import RedisCluster
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from minio import Minio

from citycache.runtime import timing
from citycache.events import TOPIC
from citycache.settings import Settings


def pg_connect(settings: Settings, *, autocommit: bool = False, application_name: str = "city-cache"):
    conn = psycopg2.connect(
        settings.database_url,
        connect_timeout=3,
        application_name=application_name,
        # Detect a dead server on an idle LISTEN connection within seconds, not hours.
        keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
    )
    conn.autocommit = autocommit
    return conn


def redis_client(settings: Settings, *, timeout: float = 2.0, url: str | None = None,
                 name: str | None = None) -> redis.Redis:
    """The cache; a RedisCluster (same commands, routed by slot) when REDIS_CLUSTER is set. `name`: what its
    connections are called in CLIENT LIST."""
    kind = RedisCluster if settings.redis_cluster else redis.Redis
    return kind.from_url(
        url or settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
        health_check_interval=30, client_name=name,
    )


def _bootstrap(settings: Settings) -> list[str]:
    return [server.strip() for server in settings.kafka_bootstrap_servers.split(",") if server.strip()]


# kafka-python backs off reconnects up to 30 s by default: after a broker restart the workers would
# sit idle that long. One second keeps recovery quick without hammering a broker that is down.
# Each client's constructor also blocks until it reaches a broker, 30 s by default: long enough to
# outlive a heartbeat, so it is bounded too (citycache/runtime/timing.py).
RECONNECT_BACKOFF = {"reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 1000,
                     "bootstrap_timeout_ms": int(timing.KAFKA_BOOTSTRAP_TIMEOUT_SECONDS * 1000)}


def kafka_producer(settings: Settings, *, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=_bootstrap(settings),
        **RECONNECT_BACKOFF,
        acks="all",
        # No duplicates or reordering from retries after a broker failover.
        enable_idempotence=True,
        # The publisher sends a whole batch, then flush()es it, which sends at once whatever linger
        # says: a linger longer than the sending loop makes the batch one produce request per
        # partition, not one per event (each also woke the sender thread: a seventh of the listener's CPU).
        linger_ms=100,
        # send() blocks at most this long for metadata when Kafka is away (and a stop waits for it).
        max_block_ms=2000,
        request_timeout_ms=5000,
        delivery_timeout_ms=10000,
        client_id=client_id,
    )


def kafka_consumer(settings: Settings) -> KafkaConsumer:
    """A member of the cleaners' group, subscribed to the invalidation topic.

    The topic is given here, not only to a later subscribe(): kafka-python 3.0 can lose a
    subscribe() that races its bootstrap metadata request and then waits for the next refresh.
    """
    return KafkaConsumer(
        TOPIC,
        bootstrap_servers=_bootstrap(settings),
        group_id=settings.kafka_consumer_group,
        client_id="kafka_cleaner",
        enable_auto_commit=False,  # offsets are committed only after Redis acknowledged the deletes
        auto_offset_reset="earliest",
        max_poll_records=500,
        # A cleaner that died hands its partitions to the others after the session (6 s, the
        # broker's default minimum), not the default 45 s. A static member (group.instance.id)
        # restarted within the session takes its partitions back without any rebalance.
        group_instance_id=settings.kafka_group_instance_id or None,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.kafka_session_timeout_ms // 3),
        # A missed metadata update heals in 30 s instead of the default 5 minutes.
        metadata_max_age_ms=30000,
        **RECONNECT_BACKOFF,
    )


def kafka_admin(settings: Settings, *, timeout_ms: int = 3000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=_bootstrap(settings), request_timeout_ms=timeout_ms, client_id="city-cache-admin",
        **RECONNECT_BACKOFF,
    )


def ensure_topic(settings: Settings) -> None:
    """Create the invalidation topic with its partitions if the broker does not have it yet."""
    admin = kafka_admin(settings, timeout_ms=int(timing.KAFKA_ADMIN_TIMEOUT_SECONDS * 1000))
    try:
        replicas = settings.kafka_replication_factor
        # acks=all then means "on at least two brokers" once there are three: one may die.
        configs = {"min.insync.replicas": str(max(1, replicas - 1))}
        admin.create_topics([NewTopic(TOPIC, settings.kafka_topic_partitions, replicas, topic_configs=configs)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def s3_client(settings: Settings, *, connect_timeout: float = 3.0, read_timeout: float = 30.0,
              retries: int = 2, pool_size: int = 16) -> Minio:
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=pool_size,
        retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        settings.s3_endpoint, access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
        secure=settings.s3_secure, region=settings.s3_region, http_client=http,
    )
