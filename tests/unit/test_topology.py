"""The view of a Redis Cluster the near cache tracks (citycache/read/topology.py): what counts as a change."""
import pytest

from citycache.read.topology import TopologyChanged, parse_cluster_nodes

# CLUSTER NODES as node 12150 answered it (3 primaries, 3 replicas), one line per node.
NODES = """\
df67 127.0.0.1:12152@12202 master - 0 1796618495299 3 connected 10923-16383
43eb 127.0.0.1:12155@12205 slave a214 0 1796618496001 2 connected
764b 127.0.0.1:12153@12203 slave df67 0 1796618495399 3 connected
5fb0 127.0.0.1:12154@12204 slave 009d 0 1796618495499 1 connected
a214 127.0.0.1:12151@12201 master - 0 1796618496001 2 connected 5461-10922
009d 127.0.0.1:12150@12200 myself,master - 0 1796618494000 1 connected 0-5460
"""


def edit(old: str, new: str, text: str = NODES) -> str:
    assert old in text
    return text.replace(old, new)


def test_the_primaries_to_track_are_every_live_primary():
    view = parse_cluster_nodes(NODES.encode())
    assert [n.address for n in view.to_track()] == ["127.0.0.1:12150", "127.0.0.1:12151", "127.0.0.1:12152"]
    assert {n.node_id for n in view.to_track()} == {"009d", "a214", "df67"}


@pytest.mark.parametrize("old, new", [
    ("myself,master", "master"),  # asked another node
    ("0 1796618495299 3", "1796618499999 1796618499999 3"),  # ping and pong times
    ("slave a214", "slave,fail? a214"),  # one node's suspicion, not the cluster's verdict
    ("2 connected 5461-10922", "2 disconnected 5461-10922"),  # the asking node's link
    ("0-5460", "0-5460 [5461->-a214]"),  # a slot being migrated, as its source shows it
], ids=["asker", "times", "suspicion", "link", "migrating"])
def test_what_differs_between_asking_nodes_or_from_second_to_second_is_no_change(old, new):
    assert parse_cluster_nodes(edit(old, new)) == parse_cluster_nodes(NODES)


@pytest.mark.parametrize("old, new", [
    ("0-5460\n", "0-5459\n"),  # a slot moved away
    ("a214 127.0.0.1:12151@12201 master - 0 1796618496001 2 connected 5461-10922",
     "a214 127.0.0.1:12151@12201 slave 43eb 0 1796618496001 2 connected"),  # a failover: roles swap
    ("slave a214", "slave,fail a214"),  # a node the cluster agreed has failed
    ("\n0", "\n7777 127.0.0.1:12156@12206 master - 0 0 9 connected\n0"),  # a node joined, with no slots yet
], ids=["slot", "role", "failed", "joined"])
def test_a_change_of_slots_roles_failures_or_members_is_a_change(old, new):
    assert parse_cluster_nodes(edit(old, new)) != parse_cluster_nodes(NODES)


def test_a_new_primary_without_slots_is_tracked_too():
    view = parse_cluster_nodes(edit("\n0", "\n7777 127.0.0.1:12156@12206 master - 0 0 9 connected\n0"))
    assert "127.0.0.1:12156" in [n.address for n in view.to_track()]


def test_a_failed_primary_is_not_tracked_but_one_still_owning_slots_leaves_the_cache_bypassed():
    gone = edit("df67 127.0.0.1:12152@12202 master - 0 1796618495299 3 connected 10923-16383",
                "df67 127.0.0.1:12152@12202 master,fail - 0 1796618495299 3 connected")
    assert "127.0.0.1:12152" not in [n.address for n in parse_cluster_nodes(gone).to_track()]
    orphan = edit("master - 0 1796618495299", "master,fail - 0 1796618495299")
    with pytest.raises(TopologyChanged, match="127.0.0.1:12152"):
        parse_cluster_nodes(orphan).to_track()


def test_an_announced_hostname_is_the_address_to_connect_to():
    named = edit("127.0.0.1:12150@12200", "10.0.0.5:6379@16379,redis-1")
    assert "redis-1:6379" in [n.address for n in parse_cluster_nodes(named).to_track()]


def test_an_answer_naming_no_node_or_no_live_primary_is_refused():
    with pytest.raises(TopologyChanged):
        parse_cluster_nodes(b"")
    only_replicas = "\n".join(line for line in NODES.splitlines() if "slave" in line)
    with pytest.raises(TopologyChanged, match="no live primary"):
        parse_cluster_nodes(only_replicas).to_track()
