"""bin/run's port check: a taken port gives one line with its holder and a setting that moves every
port of that service clear of anything taken."""
from citycache.settings import Settings
from ops.ports import needed, problems

SETTINGS = dict(database_url="postgresql://u:s%40cret@localhost:5432/db", redis_url="redis://localhost:6379/0",
                kafka_bootstrap_servers="localhost:9092", s3_endpoint="localhost:9000", http_port=8000)


def lines(taken, **overrides):
    return problems(needed(Settings(_env_file=None, **{**SETTINGS, **overrides})), taken)


def test_nothing_taken_nothing_said():
    assert lines({}) == []


def test_a_taken_port_names_its_holder_and_the_next_free_setting_with_the_password_hidden():
    assert lines({5432: "postgres pid 7", 5433: "postgres pid 8"}) == [
        "run: port 5432 (Postgres) is taken by another process (postgres pid 7); "
        "set DATABASE_URL=postgresql://u:***@localhost:5434/db in .env"]
    assert lines({6379: "redis-server pid 9"}) == [
        "run: port 6379 (Redis) is taken by another process (redis-server pid 9); "
        "set REDIS_URL=redis://localhost:6380/0 in .env"]


def test_kafka_moves_with_its_controllers_and_redis_cluster_with_its_bus_ports():
    [line] = lines({9097: "java pid 3"}, kafka_brokers=3)
    assert "port 9097 (the controller of Kafka node 3, its port + 1)" in line
    assert line.endswith("set KAFKA_BOOTSTRAP_SERVERS=localhost:9098 in .env")  # 9098..9103 all free
    # Node 2 is taken; 6385 would be clear of our own ports, but its nodes' bus ports 6435-6440 hold 6436.
    [line] = lines({6380: "x pid 1", 6436: "y pid 2"}, redis_cluster=True)
    assert line.startswith("run: port 6380 (Redis node 2)")
    assert line.endswith("set REDIS_URL=redis://localhost:6387/0 in .env"), line
