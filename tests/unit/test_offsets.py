"""The offset tracker: the committable position never passes an unfinished record."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.source.offsets import TP, Commit, OffsetTracker, PartitionOffsets, decode_done, encode_done


def test_nothing_taken_means_nothing_to_commit() -> None:
    p = PartitionOffsets()
    assert p.committable is None
    assert not p.needs_commit()


def test_committable_is_the_smallest_unfinished_offset() -> None:
    p = PartitionOffsets()
    for off in (10, 11, 12, 13):
        assert p.take(off)
    assert p.committable == 10
    p.finish(12)
    p.finish(11)
    assert p.committable == 10  # 10 still unfinished: 11 and 12 must wait
    p.finish(10)
    assert p.committable == 13
    p.finish(13)
    assert p.committable == 14  # all finished: last seen + 1


def test_gaps_in_offsets_commit_past_the_gap() -> None:
    p = PartitionOffsets()
    p.take(5)
    p.take(9)  # 6..8 are compacted away or transaction markers
    p.finish(5)
    assert p.committable == 9
    p.finish(9)
    assert p.committable == 10


def test_an_offset_seen_again_is_not_taken_twice() -> None:
    p = PartitionOffsets()
    assert p.take(3)
    assert not p.take(3)
    p.finish(3)
    assert not p.take(2)
    assert p.committable == 4


def test_finishing_twice_or_unknown_offsets_changes_nothing() -> None:
    p = PartitionOffsets()
    p.take(1)
    p.take(2)
    assert p.finish(2)
    assert not p.finish(2)
    assert not p.finish(99)
    assert p.committable == 1
    assert p.unfinished == 1


def test_the_last_commit_written_is_what_the_group_holds() -> None:
    p = PartitionOffsets()
    p.take(0)
    p.finish(0)
    assert p.needs_commit()
    p.confirm(1)
    assert not p.needs_commit()
    p.confirm(0)  # an older commit, retried by librdkafka, written after the newer one
    assert p.confirmed == 0
    assert p.needs_commit()  # position 1 must be committed again


def test_tracker_drop_marks_the_old_assignment_revoked() -> None:
    t = OffsetTracker()
    tp = TP("orders", 0)
    first = t.assign(tp)
    first.take(7)
    second = t.assign(tp)  # reassigned: a fresh object
    assert first.revoked
    assert not second.revoked
    assert t.committable() == {}
    dropped = t.drop(tp)
    assert dropped is second and second.revoked
    assert tp not in t


def test_committable_positions_carry_the_finished_offsets_above_them() -> None:
    t = OffsetTracker()
    a, b = TP("orders", 0), TP("orders", 1)
    pa, pb = t.assign(a), t.assign(b)
    for o in range(5):
        pa.take(o)
    for o in (1, 3, 4):
        pa.finish(o)
    pb.take(0)
    got = t.committable()
    assert got[a].offset == 0
    assert decode_done(got[a].metadata, 0) == {1, 3, 4}
    assert got[b] == Commit(0, "")
    assert t.unfinished == 3


def test_done_metadata_is_ignored_when_foreign_corrupt_or_for_another_position() -> None:
    meta = encode_done(100, [101, 105])
    assert decode_done(meta, 100) == {101, 105}
    assert decode_done(meta, 99) == set()  # committed elsewhere since: not ours to trust
    assert decode_done("written by another tool", 100) == set()
    assert decode_done("ac1:100:%%%", 100) == set()
    assert decode_done(None, 100) == set()
    assert encode_done(100, []) == ""


def test_done_metadata_that_would_not_fit_is_dropped() -> None:
    rnd = __import__("random").Random(1)
    done = rnd.sample(range(1, 200_000), 20_000)  # incompressible: a random fifth of 200k offsets
    assert encode_done(0, done) == ""


def test_a_long_finished_run_behind_one_slow_record_fits() -> None:
    meta = encode_done(0, range(1, 100_000))
    assert meta and len(meta) < 1000
    assert decode_done(meta, 0) == set(range(1, 100_000))


@given(
    base=st.integers(min_value=0, max_value=10**12),
    rel=st.sets(st.integers(min_value=0, max_value=5000), max_size=300),
)
def test_done_metadata_round_trips(base: int, rel: set[int]) -> None:
    done = {base + r for r in rel}
    assert decode_done(encode_done(base, done), base) == done


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=1000),
    gaps=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60),
    data=st.data(),
)
def test_committable_is_always_the_contiguous_finished_watermark(
    start: int, gaps: list[int], data: st.DataObject
) -> None:
    """Takes in offset order interleaved with finishes in any order: the committable position is always the
    smallest unfinished offset (or last seen + 1) — a commit never skips an unfinished record and never lags
    behind a finished prefix."""
    to_take = []
    off = start
    for g in gaps:
        to_take.append(off)
        off += g
    p = PartitionOffsets()
    unfinished: set[int] = set()
    last_taken = None
    while to_take or unfinished:
        if to_take and (not unfinished or data.draw(st.booleans())):
            o = to_take.pop(0)
            assert p.take(o)
            last_taken = o
            unfinished.add(o)
        else:
            o = data.draw(st.sampled_from(sorted(unfinished)))
            assert p.finish(o)
            unfinished.discard(o)
        assert last_taken is not None
        assert p.committable == (min(unfinished) if unfinished else last_taken + 1)
        assert all(u >= p.committable for u in unfinished)
    assert p.committable == off - gaps[-1] + 1
