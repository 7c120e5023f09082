"""A health probe or a metrics scrape reuses the process's Kafka connection instead of opening new ones."""
import pytest

from bench.scrape_cost import measure


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_a_scrape_opens_no_kafka_connection(base_url, path):
    result = measure(path, requests_count=10)
    assert result["kafka_connections_per_request"] == 0, result
