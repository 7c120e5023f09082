"""The pgoutput decoder on messages built by hand in the protocol's layout (version 1)."""
import struct

from citycache.events import ALL_CODES
from citycache.write.pgoutput import PG_EPOCH, Decoder
from workers.logical_capture import to_events

CITY = 16400


def relation(relid=CITY, name="city"):
    columns = [b"id", b"name", b"countrycode", b"district", b"population"] if name == "city" else [b"id", b"code"]
    body = struct.pack("!I", relid) + b"public\0" + name.encode() + b"\0" + b"i" + struct.pack("!h", len(columns))
    for column in columns:
        body += struct.pack("!b", 1 if column in (b"id", b"countrycode") else 0) + column + b"\0" + struct.pack("!ii", 23, -1)
    return b"R" + body


def tuple_data(*values):
    body = struct.pack("!h", len(values))
    for value in values:
        body += b"n" if value is None else b"t" + struct.pack("!i", len(value)) + value.encode()
    return body


def row(code, rid="1"):
    return tuple_data(rid, "Town", code, "", "5")


def key(code, rid="1"):
    return tuple_data(rid, None, code, None, None)


def begin(seconds=1.5):
    return b"B" + struct.pack("!qqi", 100, int(seconds * 1_000_000), 7)


def commit(end_lsn=200):
    return b"C" + struct.pack("!bqqq", 0, 150, end_lsn, 0)


def decode(*messages):
    decoder, done = Decoder(), []
    for message in messages:
        tx = decoder.feed(message)
        if tx is not None:
            done.append(tx)
    return decoder, done


def test_every_write_kind_and_a_move_give_their_codes():
    rel = struct.pack("!I", CITY)
    _, (tx,) = decode(relation(), begin(), b"I" + rel + b"N" + row("BGR"),
                      b"U" + rel + b"N" + row("DEU"),                    # no key change: the new row only
                      b"U" + rel + b"K" + key("FRA") + b"N" + row("ROU"),  # a move: old key, then new row
                      b"D" + rel + b"K" + key("ESP"), commit(end_lsn=4242))
    assert tx.codes == ["BGR", "DEU", "FRA", "ROU", "ESP"]
    assert tx.end_lsn == 4242 and tx.committed_at == PG_EPOCH + 1.5


def test_truncate_of_city_invalidates_everything_and_other_tables_are_ignored():
    other = 16500
    _, (tx,) = decode(relation(), relation(other, "elsewhere"), begin(),
                      b"I" + struct.pack("!I", other) + b"N" + row("USA"),
                      b"T" + struct.pack("!ib", 1, 0) + struct.pack("!I", CITY), commit())
    assert tx.codes == [ALL_CODES]


def test_a_change_of_an_unannounced_relation_assumes_the_worst():
    _, (tx,) = decode(begin(), b"I" + struct.pack("!I", 999) + b"N" + row("BGR"), commit())
    assert tx.codes == [ALL_CODES]


def test_messages_and_empty_transactions_carry_no_codes_but_move_the_position():
    message = b"M" + struct.pack("!bq", 1, 300) + b"city-cache heartbeat\0" + struct.pack("!i", 0)
    decoder, (tx,) = decode(begin(), message, commit(end_lsn=301))
    assert tx.codes == [] and tx.end_lsn == 301 and not decoder.in_transaction
    assert to_events([tx]) == []


def test_a_batch_coalesces_per_code_with_first_and_last_commit_times():
    rel = struct.pack("!I", CITY)
    _, txs = decode(relation(), begin(1.0), b"I" + rel + b"N" + row("BGR"), commit(10),
                    begin(2.0), b"I" + rel + b"N" + row("BGR"), b"I" + rel + b"N" + row("DEU"), commit(20))
    events = {e.code: e for e in to_events(txs)}
    assert events["BGR"].committed_at == PG_EPOCH + 1.0 and events["BGR"].last_committed_at == PG_EPOCH + 2.0
    assert events["BGR"].event_id == 20 and events["DEU"].committed_at == PG_EPOCH + 2.0
