"""The write path: capture (outbox, wake-up, WAL), the capture window, publishing to Kafka, deletes in Redis."""
