"""Full-depth rebuild kernel (udfs/kernels/book.py): hand cases for every break, and random update
streams against the dict-based reference book (tests/reference/book_reference.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from daedalus.udfs.kernels.book import (
    KIND_CHECKPOINT,
    KIND_DELTA,
    KIND_INVALID,
    KIND_SNAPSHOT,
    NO_ID,
    REASONS,
    RULES,
    rebuild_books,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference.book_reference import inferred_rule, replay, same_float  # noqa: E402

EDGES = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]
KINDS = {
    "snapshot": KIND_SNAPSHOT,
    "delta": KIND_DELTA,
    "checkpoint": KIND_CHECKPOINT,
    "invalid": KIND_INVALID,
}


def run(
    rows: list[dict[str, Any]],
    levels: int = 20,
    edges: list[float] = EDGES,
    strict: bool = True,
    hold: list[bool] | None = None,
) -> list[dict[str, Any]]:
    """The kernel over `rows` (reference format), decoded into one dict per row."""

    def ids(key: str) -> np.ndarray:
        return np.array([NO_ID if r[key] is None else r[key] for r in rows], np.int64)

    def side(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        off = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(r[key]) for r in rows], out=off[1:])
        flat = [lv for r in rows for lv in r[key]]
        return (np.array([p for p, _ in flat], np.float64), np.array([q for _, q in flat], np.float64), off)

    res = rebuild_books(
        np.array([KINDS[r["kind"]] for r in rows], np.int8),
        np.array([r["seq"] for r in rows], np.int64),
        ids("first"),
        ids("last"),
        ids("prev"),
        *side("bids"),
        *side("asks"),
        np.int64(levels),
        np.array(edges, np.float64),
        strict,
        np.ones(len(rows), np.bool_),
        np.array([RULES.index(r.get("rule") or inferred_rule(rows)) for r in rows], np.int8),
        np.array(hold or [False] * len(rows), np.bool_),
        False,
    )
    emit, restart, reason, _, account, bpx, bsz, boff, apx, asz, aoff, bband, aband = res
    out = []
    for i in range(len(rows)):
        out.append(
            {
                "emit": bool(emit[i]),
                "restart": bool(restart[i]),
                "reason": REASONS[reason[i]],
                "account": REASONS[account[i]],
                "bids": list(
                    zip(bpx[boff[i] : boff[i + 1]].tolist(), bsz[boff[i] : boff[i + 1]].tolist(), strict=True)
                ),
                "asks": list(
                    zip(apx[aoff[i] : aoff[i + 1]].tolist(), asz[aoff[i] : aoff[i + 1]].tolist(), strict=True)
                ),
                "bid_bands": [None if np.isnan(v) else float(v) for v in bband[i]],
                "ask_bands": [None if np.isnan(v) else float(v) for v in aband[i]],
            }
        )
    return out


def row(
    kind: str,
    seq: int,
    bids: list,
    asks: list,
    first: int | None = None,
    last: int | None = None,
    prev: int | None = None,
    rule: str | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "seq": seq,
        "first": first,
        "last": last,
        "prev": prev,
        "bids": bids,
        "asks": asks,
        "rule": rule,
    }


SNAP = row("snapshot", 1, [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)], [(101.0, 1.5), (102.0, 2.5)], last=10)


def test_deltas_set_insert_delete_and_emit_best_first() -> None:
    out = run(
        [SNAP, row("delta", 2, [(99.0, 0.0), (100.5, 4.0)], [(101.0, 7.0), (103.0, 1.0)], first=11, last=12)]
    )
    assert out[0]["restart"] and out[0]["reason"] == "snapshot"
    assert out[1]["emit"] and not out[1]["restart"]
    assert out[1]["bids"] == [(100.5, 4.0), (100.0, 1.0), (98.0, 3.0)]
    assert out[1]["asks"] == [(101.0, 7.0), (102.0, 2.5), (103.0, 1.0)]


def test_levels_are_cut_to_max_levels() -> None:
    assert run([SNAP], levels=2)[0]["bids"] == [(100.0, 1.0), (99.0, 2.0)]


def test_update_id_regression_breaks_until_the_next_load() -> None:
    out = run(
        [
            SNAP,
            row("delta", 2, [(100.0, 2.0)], [], first=11, last=11),
            row("delta", 3, [(100.0, 2.5)], [], first=11, last=11),
            row("delta", 4, [(100.0, 3.0)], [], first=12, last=12),
            row("checkpoint", 5, [(100.0, 5.0)], [(101.0, 1.0)], last=12),
            row("delta", 6, [(100.0, 6.0)], [], first=13, last=13),
        ]
    )
    assert [o["emit"] for o in out] == [True, True, False, False, False, True]
    assert out[2]["reason"] == "update_id_regressed" and out[3]["reason"] == "no_book"
    assert [o["account"] for o in out] == ["", "", "update_id_regressed", "no_book", "", ""]
    # the recovering checkpoint restarts the series and says why it had to (it is not served:
    # place_breaks moves this onto the next served row)
    assert out[4]["restart"] and out[4]["reason"] == "update_id_regressed"
    assert out[5]["bids"] == [(100.0, 6.0)]


def test_contiguous_stale_diffs_after_a_load_are_skipped_not_a_break() -> None:
    # Binance spot: drop u <= lastUpdateId; the first applied has U <= lastUpdateId + 1 <= u
    out = run(
        [
            SNAP,
            row("delta", 2, [(100.0, 7.0)], [], first=5, last=9),
            row("delta", 3, [(100.0, 8.0)], [], first=8, last=10),
            row("delta", 4, [(100.0, 2.0)], [], first=9, last=12),
            row("delta", 5, [(100.0, 3.0)], [], first=13, last=13),
            row("delta", 6, [(100.0, 4.0)], [], first=13, last=14),
        ]
    )
    assert [o["account"] for o in out] == ["", "stale", "stale", "", "", "update_id_gap"]
    assert [o["emit"] for o in out] == [True, False, False, True, True, False]
    assert out[4]["bids"][0] == (100.0, 3.0)


def test_gap_between_last_and_next_first_update_id() -> None:
    out = run([SNAP, row("delta", 2, [(100.0, 2.0)], [], first=12, last=13)])
    assert out[1]["reason"] == "update_id_gap" and not out[1]["emit"]


def test_prev_chain_futures_diffs_chain_by_pu_although_u_skips() -> None:
    # Binance USD-M / COIN-M: U jumps on most diffs (the bug of issue 28: the spot rule called every
    # one of them a gap); pu = previous u is the chain. Stale: u < lastUpdateId before the first one.
    out = run(
        [
            SNAP,
            row("delta", 2, [(100.0, 9.0)], [], first=4, last=8, prev=3, rule="prev_chain"),
            row("delta", 3, [(100.0, 2.0)], [], first=9, last=12, prev=8, rule="prev_chain"),
            row("delta", 4, [(100.0, 3.0)], [], first=20, last=25, prev=12, rule="prev_chain"),
            row("delta", 5, [(100.0, 4.0)], [], first=31, last=40, prev=25, rule="prev_chain"),
        ]
    )
    assert [o["account"] for o in out] == ["", "stale", "", "", ""]
    assert [o["emit"] for o in out] == [True, False, True, True, True]
    assert out[4]["bids"][0] == (100.0, 4.0)
    as_spot = run(
        [
            SNAP,
            row("delta", 3, [(100.0, 2.0)], [], first=9, last=12, prev=8, rule="contiguous"),
            row("delta", 4, [(100.0, 3.0)], [], first=20, last=25, prev=12, rule="contiguous"),
        ]
    )
    assert [o["account"] for o in as_spot] == ["", "", "update_id_gap"]


def test_prev_chain_okx_first_update_chains_to_the_snapshot_seqid() -> None:
    okx = [
        SNAP,  # seqId 10
        row("delta", 2, [(100.0, 2.0)], [], first=15, last=15, prev=10, rule="prev_chain"),
        row("delta", 3, [], [], first=15, last=15, prev=15, rule="prev_chain"),  # no-change update
        row("delta", 4, [(100.0, 3.0)], [], first=18, last=18, prev=15, rule="prev_chain"),
        row("delta", 5, [(100.0, 4.0)], [], first=21, last=21, prev=19, rule="prev_chain"),
    ]
    assert [o["account"] for o in run(okx)] == ["", "", "", "", "update_id_gap"]
    after_gap = run(
        [SNAP, row("delta", 2, [(100.0, 2.0)], [], first=15, last=15, prev=12, rule="prev_chain")]
    )
    assert after_gap[1]["account"] == "update_id_gap"


def test_increasing_and_none_rules() -> None:
    inc = [
        SNAP,
        row("delta", 2, [(100.0, 2.0)], [], last=14, rule="increasing"),
        row("delta", 3, [(100.0, 3.0)], [], last=30, rule="increasing"),
        row("delta", 4, [(100.0, 4.0)], [], last=30, rule="increasing"),
    ]
    assert [o["account"] for o in run(inc)] == ["", "", "", "update_id_regressed"]
    kraken = [
        row("snapshot", 1, SNAP["bids"], SNAP["asks"], rule="none"),
        row("delta", 2, [(100.0, 2.0)], [], rule="none"),
        row("delta", 3, [(100.0, 3.0)], [], rule="none"),
    ]
    assert [o["emit"] for o in run(kraken)] == [True, True, True]


def test_held_rows_are_applied_not_served_and_counted_duplicate() -> None:
    rows = [
        SNAP,
        row("delta", 2, [(100.0, 2.0)], [], first=11, last=11),
        row("delta", 3, [(100.0, 3.0)], [], first=12, last=12),
    ]
    out = run(rows, hold=[False, True, False])
    assert [o["emit"] for o in out] == [True, False, True]
    assert out[1]["account"] == "duplicate" and out[2]["bids"][0] == (100.0, 3.0)


def test_prev_update_id_must_equal_previous_last_after_a_delta_only() -> None:
    # right after a load pu may differ (Binance futures' first event); after a delta it must chain
    out = run(
        [
            SNAP,
            row("delta", 2, [(100.0, 2.0)], [], first=8, last=14, prev=7),
            row("delta", 3, [(100.0, 3.0)], [], first=15, last=16, prev=14),
            row("delta", 4, [(100.0, 4.0)], [], first=17, last=18, prev=15),
        ]
    )
    assert [o["reason"] for o in out] == ["snapshot", "", "", "update_id_gap"]


def test_unknown_level_removed_inside_the_loaded_depth_is_a_break_beyond_it_is_normal() -> None:
    beyond = run([SNAP, row("delta", 2, [(97.0, 0.0)], [(105.0, 0.0)], first=11, last=11)])
    assert beyond[1]["emit"] and beyond[1]["reason"] == ""
    inside = run([SNAP, row("delta", 2, [(99.5, 0.0)], [], first=11, last=11)])
    assert not inside[1]["emit"] and inside[1]["reason"] == "unknown_level_removed"
    # a venue whose diffs aggregate changes (Binance) deletes levels never seen: not strict there
    lenient = run([SNAP, row("delta", 2, [(99.5, 0.0)], [], first=11, last=11)], strict=False)
    assert lenient[1]["emit"] and lenient[1]["bids"] == SNAP["bids"]


def test_checkpoint_equal_changes_nothing_different_is_a_mismatch() -> None:
    same = run([SNAP, row("checkpoint", 2, SNAP["bids"], SNAP["asks"], last=10)])
    # a checkpoint is the collector's storage row: it seeds / validates, it is never served
    assert not same[1]["emit"] and not same[1]["restart"] and same[1]["account"] == ""
    diff = run(
        [
            SNAP,
            row("checkpoint", 2, [(100.0, 9.0)], SNAP["asks"], last=10),
            row("delta", 3, [(99.0, 1.0)], [], first=11, last=11),
        ]
    )
    assert diff[1]["restart"] and diff[1]["reason"] == "checkpoint_mismatch" and not diff[1]["emit"]
    assert diff[2]["bids"] == [(100.0, 9.0), (99.0, 1.0)]


def test_first_row_checkpoint_starts_the_series_and_deltas_before_a_load_are_no_book() -> None:
    out = run(
        [
            row("delta", 1, [(100.0, 1.0)], [], first=1, last=1),
            row("checkpoint", 2, [(100.0, 1.0)], [(101.0, 1.0)], last=5),
        ]
    )
    assert out[0]["reason"] == "no_book" and not out[0]["emit"]
    # the book was never held on this connection: the load is a start, not a recovery
    assert out[1]["restart"] and out[1]["reason"] == "series_start"


def test_a_refused_row_breaks_the_book() -> None:
    out = run(
        [
            SNAP,
            row("invalid", 2, [(100.0, float("nan"))], [], first=11, last=11),
            row("delta", 3, [(100.0, 2.0)], [], first=12, last=12),
            row("snapshot", 4, SNAP["bids"], SNAP["asks"], last=20),
        ]
    )
    assert [o["reason"] for o in out] == ["snapshot", "invalid_levels", "no_book", "snapshot"]
    assert [o["emit"] for o in out] == [True, False, False, True]


def test_duplicate_seq_is_skipped() -> None:
    d = row("delta", 2, [(100.0, 2.0)], [], first=11, last=11)
    out = run([SNAP, d, dict(d)])
    assert [o["emit"] for o in out] == [True, True, False] and out[2]["reason"] == "duplicate"


def test_bands_by_hand() -> None:
    # mid 100: bid 99.96 is 4 bps away (0–5), 99.85 is 15 bps (10–25), 98.9 is 110 bps (outside
    # every band, but the deepest bid shows every band up to 100); asks reach 30 bps only, so their
    # 25–50 and 50–100 bands are NULL although 100.3 lies in 25–50.
    snap = row(
        "snapshot",
        1,
        [(99.96, 1.0), (99.85, 2.0), (98.9, 4.0)],
        [(100.04, 3.0), (100.2, 5.0), (100.3, 6.0)],
        last=1,
    )
    out = run([snap])[0]
    assert out["bid_bands"] == [1.0, 0.0, 2.0, 0.0, 0.0]
    assert out["ask_bands"] == [3.0, 0.0, 5.0, None, None]
    # an inserted deeper ask (beyond the loaded depth) makes the 25–50 band visible
    deeper = run([snap, row("delta", 2, [], [(100.6, 1.0)], first=2, last=2)])[1]
    assert deeper["ask_bands"] == [3.0, 0.0, 5.0, 6.0, None]


def test_rows_not_wanted_are_applied_but_not_copied_out() -> None:
    rows = [
        SNAP,
        row("delta", 2, [(99.0, 0.0)], [], first=11, last=11),
        row("delta", 3, [(100.0, 5.0)], [], first=12, last=12),
    ]
    kinds = np.array([KIND_SNAPSHOT, KIND_DELTA, KIND_DELTA], np.int8)
    ids = np.array([10, 11, 12], np.int64)
    none = np.full(3, NO_ID, np.int64)
    bpx = np.array([100.0, 99.0, 98.0, 99.0, 100.0])
    bsz = np.array([1.0, 2.0, 3.0, 0.0, 5.0])
    boff = np.array([0, 3, 4, 5], np.int64)
    apx, asz, aoff = np.array([101.0, 102.0]), np.array([1.5, 2.5]), np.array([0, 2, 2, 2], np.int64)
    emit, _, _, _, _, obp, obs, obo, _, _, _, bb, _ = rebuild_books(
        kinds,
        np.array([1, 2, 3]),
        none,
        ids,
        none,
        bpx,
        bsz,
        boff,
        apx,
        asz,
        aoff,
        np.int64(20),
        np.array(EDGES),
        True,
        np.array([False, False, True]),
        np.zeros(3, np.int8),
        np.zeros(3, np.bool_),
        False,
    )
    assert emit.tolist() == [True, True, True] and obo.tolist() == [0, 0, 0, 2]
    assert (
        list(zip(obp, obs, strict=True))
        == [(100.0, 5.0), (98.0, 3.0)]
        == [(p, q) for p, q in run(rows)[2]["bids"]]
    )
    assert np.isnan(bb[0]).all() and not np.isnan(bb[2]).all()


def test_crossed_book_is_kept() -> None:
    out = run([SNAP, row("delta", 2, [(101.5, 1.0)], [], first=11, last=11)])
    assert out[1]["emit"] and out[1]["bids"][0] == (101.5, 1.0) and out[1]["asks"][0] == (101.0, 1.5)


# ------------------------------------------------------------------------------ property tests

PRICES = st.integers(90, 110).map(lambda t: t / 1.0)


@st.composite
def streams(draw: Any) -> list[dict[str, Any]]:
    """Random rows: loads (snapshot or checkpoint, sometimes mid-stream), deltas with inserts, size
    changes, deletes of known and unknown levels, and update ids that mostly chain but sometimes
    regress, skip, repeat a seq or carry a pu."""
    n = draw(st.integers(1, 40))
    rule = draw(st.sampled_from([None, *RULES]))
    rows, uid, seq = [], 100, 0
    for _ in range(n):
        seq += draw(st.sampled_from([1, 1, 1, 1, 0]))  # 0: a duplicate seq
        kind = draw(st.sampled_from(["delta"] * 12 + ["snapshot", "checkpoint", "invalid"]))
        if kind in ("delta", "invalid"):
            nb = draw(st.integers(0, 5))
            na = draw(st.integers(0, 5))
            bids = [
                (draw(st.integers(80, 100).map(float)), draw(st.sampled_from([0.0, 0.0, 1.0, 2.5, 3.0])))
                for _ in range(nb)
            ]
            asks = [
                (draw(st.integers(100, 120).map(float)), draw(st.sampled_from([0.0, 0.0, 1.0, 2.5, 3.0])))
                for _ in range(na)
            ]
            step = draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 0, -3]))
            first = uid + step
            last = first + draw(st.integers(0, 2))
            prev = draw(st.sampled_from([None, None, uid, uid - 1]))
            if step > 0:
                uid = last
            rows.append(row(kind, seq, bids, asks, first=first, last=last, prev=prev, rule=rule))
        else:
            bids = {
                float(p): float(draw(st.integers(1, 4)))
                for p in draw(st.lists(st.integers(85, 100), max_size=8))
            }
            asks = {
                float(p): float(draw(st.integers(1, 4)))
                for p in draw(st.lists(st.integers(100, 115), max_size=8))
            }
            rows.append(
                row(
                    kind,
                    seq,
                    sorted(bids.items(), reverse=True),
                    sorted(asks.items()),
                    last=draw(st.sampled_from([uid, None])),
                    rule=rule,
                )
            )
    return rows


@settings(max_examples=400, deadline=None)
@given(streams(), st.integers(1, 6), st.booleans())
def test_random_streams_equal_the_dict_reference(
    rows: list[dict[str, Any]], levels: int, strict: bool
) -> None:
    edges = [0.0, 50.0, 150.0, 400.0, 1000.0, 2500.0]  # bps wide enough for prices 80..120
    got = run(rows, levels, edges, strict)
    want = replay(rows, levels, edges, strict)
    for g, w in zip(got, want, strict=True):
        assert (g["emit"], g["restart"], g["reason"]) == (w.emit, w.restart, w.reason)
        if w.emit:
            assert g["bids"] == w.bids and g["asks"] == w.asks
            assert all(same_float(a, b) for a, b in zip(g["bid_bands"], w.bid_bands, strict=True))
            assert all(same_float(a, b) for a, b in zip(g["ask_bands"], w.ask_bands, strict=True))


@settings(max_examples=300, deadline=None)
@given(streams(), st.booleans())
def test_every_message_is_served_or_counted_with_a_reason(rows: list[dict[str, Any]], strict: bool) -> None:
    out = run(rows, 5, EDGES, strict)
    messages = [o for r, o in zip(rows, out, strict=True) if r["kind"] != "checkpoint"]
    served = [o for o in messages if o["emit"]]
    counted = [o for o in messages if not o["emit"] and o["account"]]
    assert len(served) + len(counted) == len(messages)
    assert all(not o["account"] for o in served)
    assert not any(o["emit"] for r, o in zip(rows, out, strict=True) if r["kind"] == "checkpoint")
