"""The synthetic bronze the model tests and the build benchmark run on (daedalus.devkit.synth)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from daedalus.collector.schemas import SCHEMAS
from daedalus.devkit.synth import generate


def test_synth_is_deterministic_and_looks_like_a_market(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", hours=0.5, snapshot_ms=500, gaps_per_day=2)
    b = generate(tmp_path / "b", hours=0.5, snapshot_ms=500, gaps_per_day=2)
    assert a.rows == b.rows and a.gaps == b.gaps and len(a.gaps) == 2
    con = duckdb.connect()
    for channel, schema in ((c, SCHEMAS[c]) for c in ("ticker", "trades", "orderbook", "events")):
        ta = con.execute(
            f"SELECT * FROM read_parquet('{tmp_path}/a/bronze/{channel}/*/*/*.parquet', hive_partitioning=false) ORDER BY ALL"
        ).to_arrow_table()
        tb = con.execute(
            f"SELECT * FROM read_parquet('{tmp_path}/b/bronze/{channel}/*/*/*.parquet', hive_partitioning=false) ORDER BY ALL"
        ).to_arrow_table()
        assert ta.equals(tb) and ta.num_rows > 0, channel
        assert ta.column_names == schema.names
    ob = f"read_parquet('{tmp_path}/a/bronze/orderbook/*/*/*.parquet')"
    bad = con.execute(f"""
        SELECT count(*) FILTER (WHERE asks[1].price - bids[1].price < 0.0099),
               count(*) FILTER (WHERE len(bids) NOT BETWEEN 1 AND 20 OR len(asks) NOT BETWEEN 1 AND 20),
               count(*) FILTER (WHERE NOT list_bool_and(list_transform(bids, l -> l.size > 0 AND abs(l.price * 100 - round(l.price * 100)) < 1e-6))),
               count(*) FILTER (WHERE len(bids) < 20)
        FROM {ob}""").fetchone()
    assert bad[:3] == (0, 0, 0) and bad[3] > 0  # spreads ≥ 1 tick, tick prices, sizes > 0; some short sides
    ids = con.execute(
        f"SELECT trade_id::BIGINT FROM read_parquet('{tmp_path}/a/bronze/trades/*/*/*.parquet') ORDER BY timestamp, trade_id::BIGINT"
    ).fetchall()
    assert [i[0] for i in ids] == sorted({i[0] for i in ids})  # strictly increasing with time
    events = con.execute(
        f"SELECT event_type, count(*) FROM read_parquet('{tmp_path}/a/bronze/events/*/*/*.parquet') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert events == [("connect", 2), ("disconnect", 2)]
    # nothing is recorded inside a gap, and each gap starts a new connection whose seq restarts at 0
    for _, start, end in a.gaps:
        inside = con.execute(
            f"SELECT count(*) FROM {ob} WHERE timestamp >= '{start}'::TIMESTAMPTZ AND timestamp < '{end}'::TIMESTAMPTZ"
        ).fetchone()[0]
        assert inside == 0
    conns = con.execute(
        f"SELECT conn_id, min(seq) FROM read_parquet('{tmp_path}/a/bronze/[otr]*/*/*/*.parquet', "
        "union_by_name=true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [c[1] for c in conns] == [0, 0, 0]  # one counter per connection across orderbook, trades, ticker
