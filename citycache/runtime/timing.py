"""The workers' longest waits, in one place: the heartbeat TTL and supervisord's stop waits follow from them.

A worker beats from its loop, and every wait in the loops is cut into slices of at most
BEAT_SECONDS with a beat between them (select timeouts, reconnect backoffs, Kafka's acks). What a
worker cannot slice is one blocking client call, the longest being a Kafka admin request. So a live
worker is never silent longer than LONGEST_BLOCKING_CALL_SECONDS plus one slice, and a heartbeat
key that lives twice that long expires only when the worker is dead or stuck.
"""
from __future__ import annotations

BEAT_SECONDS = 2.0
# The longest single call a worker blocks in: a Kafka admin request (creating the topic).
KAFKA_ADMIN_TIMEOUT_SECONDS = 10.0
# How long pg_listener waits for Kafka to acknowledge one batch before it keeps the rows for a retry.
KAFKA_ACK_TIMEOUT_SECONDS = 10.0
# How long a Kafka client's constructor waits to reach a broker (kafka-python's default is 30 s).
KAFKA_BOOTSTRAP_TIMEOUT_SECONDS = 5.0
# Reconnect backoffs grow to this.
RECONNECT_CAP_SECONDS = 10.0

LONGEST_BLOCKING_CALL_SECONDS = max(KAFKA_ADMIN_TIMEOUT_SECONDS, KAFKA_BOOTSTRAP_TIMEOUT_SECONDS)
LONGEST_SILENCE_SECONDS = LONGEST_BLOCKING_CALL_SECONDS + BEAT_SECONDS
HEARTBEAT_TTL_SECONDS = int(2 * LONGEST_SILENCE_SECONDS)  # 24 s
# A SIGTERM ends every sliced wait within a slice; a stop can still sit out one blocking call. The
# supervisord.conf stopwaitsecs of both workers must be above this (tests/containers checks it).
LONGEST_STOP_SECONDS = LONGEST_BLOCKING_CALL_SECONDS + BEAT_SECONDS
