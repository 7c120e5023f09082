"""What every program runs on: client factories, JSON logs, metrics, heartbeats, signals, backoff, timing."""
