"""Property tests for the spool reader: any bytes give records or typed damage, never a crash; good records survive."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress.spool_format import Damaged, Record, decode_at, encode, scan
from shared.core.outgoing import OutgoingMessage

# The suite's bounded profile (tests/conftest.py) sets how many examples; HYPOTHESIS_PROFILE=fuzz runs more.
BUDGET = settings(suppress_health_check=[HealthCheck.too_slow])

messages = st.builds(
    OutgoingMessage,
    exchange=st.text(max_size=40),
    routing_key=st.text(max_size=40),
    body=st.binary(max_size=300),
    message_id=st.none() | st.text(max_size=40),
    content_type=st.text(max_size=40),
    headers=st.dictionaries(
        st.text(max_size=10), st.none() | st.booleans() | st.integers() | st.text(max_size=20), max_size=4
    ),
    timestamp=st.none() | st.integers(min_value=0, max_value=2**40),
)


def _covers(items: list[Record | Damaged], start: int, end: int) -> bool:
    """The items tile [start, end) with no gap and no overlap."""
    position = start
    for item in items:
        if item.offset != position or item.end <= item.offset:
            return False
        position = item.end
    return position == end


@BUDGET
@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2100))
def test_any_bytes_give_records_or_damage_never_a_crash(data: bytes, start: int) -> None:
    items = list(scan(data, start))
    assert all(isinstance(item, Record | Damaged) for item in items)
    assert _covers(items, start, len(data)) if start < len(data) else items == []
    assert decode_at(data, start) == (items[0] if items else None)


@BUDGET
@given(st.lists(messages, min_size=1, max_size=5))
def test_intact_records_come_back_as_written(written: list[OutgoingMessage]) -> None:
    data = b"".join(encode(m) for m in written)
    items = list(scan(data))
    assert all(isinstance(item, Record) for item in items)
    assert [item.message for item in items if isinstance(item, Record)] == [
        OutgoingMessage(**{**m.__dict__, "headers": dict(m.headers)}) for m in written
    ]
    assert _covers(items, 0, len(data))


@BUDGET
@given(st.lists(messages, min_size=2, max_size=5), st.data())
def test_good_records_survive_damage_to_one_record(written: list[OutgoingMessage], data: st.DataObject) -> None:
    frames = [encode(m) for m in written]
    victim = data.draw(st.integers(0, len(frames) - 1), label="victim")
    frame = frames[victim]
    how = data.draw(st.sampled_from(["flip", "truncate", "garbage-after"]), label="how")
    if how == "flip":
        at = data.draw(st.integers(0, len(frame) - 1), label="at")
        frames[victim] = frame[:at] + bytes([frame[at] ^ data.draw(st.integers(1, 255), label="xor")]) + frame[at + 1 :]
    elif how == "truncate":
        frames[victim] = frame[: data.draw(st.integers(1, len(frame) - 1), label="keep")]
    else:
        frames[victim] = frame + data.draw(st.binary(min_size=1, max_size=64), label="garbage")

    items = list(scan(b"".join(frames)))
    survivors = [item.message.body for item in items if isinstance(item, Record)]
    # Every record not hit comes back, in order (noise after a record leaves the record itself intact).
    hit = {victim} if how != "garbage-after" else set()
    assert survivors == [m.body for n, m in enumerate(written) if n not in hit]
    assert any(isinstance(item, Damaged) for item in items)
    assert _covers(items, 0, sum(len(f) for f in frames))


@BUDGET
@given(st.lists(messages, min_size=1, max_size=4), st.binary(max_size=200), st.binary(max_size=200))
def test_records_are_found_between_stretches_of_noise(
    written: list[OutgoingMessage], before: bytes, after: bytes
) -> None:
    data = before + b"".join(encode(m) for m in written) + after
    survivors = [item.message.body for item in scan(data) if isinstance(item, Record)]
    assert survivors == [m.body for m in written]
