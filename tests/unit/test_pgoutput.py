"""The pgoutput decoder on messages built by hand in the protocol's layout (version 1)."""
import struct

from citycache import rules
from citycache.write.pgoutput import PG_EPOCH, Decoder
from tests.support import ROOT
from workers.logical_capture import to_changes

RULES = rules.parse((ROOT / "invalidation.toml").read_text())
CITY, LANGUAGE = 16400, 16410
TEXT, BPCHAR = 25, 1042
COLUMNS = {"city": [("id", 23), ("countrycode", BPCHAR)], "countrylanguage": [("countrycode", BPCHAR), ("language", TEXT)],
           "elsewhere": [("id", 23), ("countrycode", BPCHAR)]}


def relation(relid=CITY, name="city", namespace="public"):
    columns = COLUMNS[name]
    body = struct.pack("!I", relid) + namespace.encode() + b"\0" + name.encode() + b"\0" + b"i"
    body += struct.pack("!h", len(columns))
    for column, oid in columns:
        body += struct.pack("!b", 1) + column.encode() + b"\0" + struct.pack("!Ii", oid, -1)
    return b"R" + body


def tuple_data(*values):
    body = struct.pack("!h", len(values))
    for value in values:
        body += b"n" if value is None else b"t" + struct.pack("!i", len(value)) + value.encode()
    return body


def row(code, rid="1"):
    return tuple_data(rid, code)


def begin(seconds=1.5):
    return b"B" + struct.pack("!qqi", 100, int(seconds * 1_000_000), 7)


def commit(end_lsn=200):
    return b"C" + struct.pack("!bqqq", 0, 150, end_lsn, 0)


def decode(*messages):
    decoder = Decoder({("public", rule.table): rule for rule in RULES.rules})
    done = []
    for message in messages:
        tx = decoder.feed(message)
        if tx is not None:
            done.append(tx)
    return decoder, done


def values(tx):
    return [(rule.table, vals) for rule, vals in tx.changes]


def test_every_write_kind_and_a_move_give_their_values():
    rel = struct.pack("!I", CITY)
    _, (tx,) = decode(relation(), begin(), b"I" + rel + b"N" + row("BGR"),
                      b"U" + rel + b"N" + row("DEU"),                    # no key change: the new row only
                      b"U" + rel + b"K" + row("FRA") + b"N" + row("ROU"),  # a move: old key, then new row
                      b"D" + rel + b"K" + row("ESP"), commit(end_lsn=4242))
    assert values(tx) == [("city", (c,)) for c in ("BGR", "DEU", "FRA", "ROU", "ESP")]
    assert tx.end_lsn == 4242 and tx.committed_at == PG_EPOCH + 1.5


def test_a_char_column_loses_its_padding_as_its_cast_to_text_does():
    rel = struct.pack("!I", CITY)
    _, (tx,) = decode(relation(), begin(), b"I" + rel + b"N" + row("AB "), commit())
    assert values(tx) == [("city", ("AB",))]


def test_each_relation_maps_to_its_own_rule_and_one_outside_the_rules_counts_for_nothing():
    other = 16500
    _, (tx,) = decode(relation(), relation(LANGUAGE, "countrylanguage"), relation(other, "elsewhere"), begin(),
                      b"I" + struct.pack("!I", other) + b"N" + row("USA"),  # has a countrycode, but is not a rule's
                      b"I" + struct.pack("!I", LANGUAGE) + b"N" + tuple_data("BGR", "bg"), commit())
    assert values(tx) == [("countrylanguage", ("BGR",))]


def test_a_rules_table_in_another_schema_is_not_the_rule():
    _, (tx,) = decode(relation(CITY, "city", namespace="staging"), begin(),
                      b"I" + struct.pack("!I", CITY) + b"N" + row("BGR"), commit())
    assert tx.changes == [] and not tx.everything


def test_truncate_names_the_rules_it_truncates():
    _, (tx,) = decode(relation(), relation(LANGUAGE, "countrylanguage"), begin(),
                      b"T" + struct.pack("!ib", 1, 0) + struct.pack("!I", LANGUAGE), commit())
    assert [rule.table for rule in tx.truncated] == ["countrylanguage"]
    batch = to_changes([tx], RULES.rules)
    (event,) = batch.events()
    assert event.key is None and event.prefixes == ("country_",)


def test_a_change_of_an_unannounced_relation_assumes_the_worst():
    _, (tx,) = decode(begin(), b"I" + struct.pack("!I", 999) + b"N" + row("BGR"), commit())
    assert tx.everything
    (event,) = to_changes([tx], RULES.rules).events()
    assert event.prefixes == ("cities_", "country_")


def test_messages_and_empty_transactions_carry_nothing_but_move_the_position():
    message = b"M" + struct.pack("!bq", 1, 300) + b"city-cache heartbeat\0" + struct.pack("!i", 0)
    decoder, (tx,) = decode(begin(), message, commit(end_lsn=301))
    assert tx.changes == [] and tx.end_lsn == 301 and not decoder.in_transaction
    assert to_changes([tx], RULES.rules).events() == []


def test_a_batch_is_one_event_per_key_with_first_and_last_commit_times():
    rel = struct.pack("!I", CITY)
    _, txs = decode(relation(), begin(1.0), b"I" + rel + b"N" + row("BGR"), commit(10),
                    begin(2.0), b"I" + rel + b"N" + row("BGR"), b"I" + rel + b"N" + row("DEU"), commit(20))
    events = {e.key: e for e in to_changes(txs, RULES.rules).events()}
    assert set(events) == {"cities_BGR", "country_BGR", "cities_DEU", "country_DEU"}
    assert events["cities_BGR"].committed_at == PG_EPOCH + 1.0 and events["cities_BGR"].last_committed_at == PG_EPOCH + 2.0
    assert events["cities_BGR"].event_id == 20 and events["country_DEU"].committed_at == PG_EPOCH + 2.0
