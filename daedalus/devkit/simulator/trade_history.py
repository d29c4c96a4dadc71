"""REST trade history for the fakes: the same trades they stream, served with each venue's paging rules.

Every trade a fake publishes (to a subscriber or to no one: the market runs on while a client is
disconnected) is appended to its `TradeTape`; the REST routes read the tape. Paging and limits as
documented (checked against ccxt's `fetch_trades` for each venue):

- Binance `GET /api/v3/historicalTrades?symbol&limit&fromId` (limit default 500, max 1000; trades
  with id >= fromId, oldest first; no fromId = the most recent `limit`) and `GET /api/v3/trades`
  (the most recent `limit`, max 1000). Answers 429 with `Retry-After` when rate limited, 418 once
  banned (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits).
- OKX `GET /api/v5/market/history-trades`, Kraken `GET /0/public/Trades`, Coinbase Advanced Trade
  `GET /api/v3/brokerage/market/products/{id}/ticker`: see their functions below.
- Bybit `GET /v5/market/recent-trade?category&symbol&limit`: only the most recent trades (spot limit
  1..60, default 60), newest first, no paging (https://bybit-exchange.github.io/docs/v5/market/recent-trade);
  and its candles, `GET /v5/market/kline`, made from the same tape.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from daedalus.devkit.simulator.market import Trade


@dataclass
class TradeTape:
    """Every trade published, per venue market id, in id order."""

    trades: dict[str, list[Trade]] = field(default_factory=dict)
    requests: list[tuple[str, dict]] = field(default_factory=list)  # (path, query) per REST call
    _refuse: list[tuple[int, float]] = field(default_factory=list)  # (status, retry_after) per next call

    def add(self, market_id: str, trade: Trade) -> None:
        self.trades.setdefault(market_id, []).append(trade)

    def refuse(self, count: int, status: int = 429, retry_after: float = 1.0) -> None:
        """Answer the next `count` history requests with `status` (429 or 418) and Retry-After."""
        self._refuse += [(status, retry_after)] * count

    def refused(self, request: web.Request) -> tuple[int, float] | None:
        self.requests.append((request.path, dict(request.query)))
        return self._refuse.pop(0) if self._refuse else None

    def from_id(self, market_id: str, first_id: int, limit: int) -> list[Trade]:
        tape = self.trades.get(market_id, [])
        i = bisect.bisect_left([t.trade_id for t in tape], first_id)
        return tape[i : i + limit]

    def bars(
        self, market_id: str, step_ms: int
    ) -> list[tuple[int, float, float, float, float, float, float]]:
        """(open time, open, high, low, close, volume, turnover) per `step_ms` bar with trades."""
        out: dict[int, list] = {}
        for t in self.trades.get(market_id, []):
            start = t.ts_ms // step_ms * step_ms
            bar = out.get(start)
            if bar is None:
                out[start] = [start, t.price, t.price, t.price, t.price, t.qty, t.price * t.qty]
            else:
                bar[2], bar[3], bar[4] = max(bar[2], t.price), min(bar[3], t.price), t.price
                bar[5] += t.qty
                bar[6] += t.price * t.qty
        return [tuple(b) for b in out.values()]  # type: ignore[misc]

    def last(self, market_id: str, limit: int) -> list[Trade]:
        tape = self.trades.get(market_id, [])
        return tape[-limit:] if limit > 0 else []


def _limit(request: web.Request, default: int, maximum: int, key: str = "limit") -> int | None:
    try:
        n = int(request.query.get(key, default))
    except ValueError:
        return None
    return n if 1 <= n <= maximum else None


# ---- Binance ----


def binance_routes(app: web.Application, tape: TradeTape, prefix: str = "/api/v3") -> None:
    def trade_json(t: Trade) -> dict:
        return {
            "id": t.trade_id,
            "price": f"{t.price:.8f}",
            "qty": f"{t.qty:.8f}",
            "quoteQty": f"{t.price * t.qty:.8f}",
            "time": t.ts_ms,
            "isBuyerMaker": t.buyer_is_maker,
            "isBestMatch": True,
        }

    def refusal(status: int, retry_after: float) -> web.Response:
        msg = "Way too many requests; IP banned." if status == 418 else "Too many requests."
        return web.json_response(
            {"code": -1003, "msg": msg}, status=status, headers={"Retry-After": str(int(retry_after))}
        )

    async def historical(request: web.Request) -> web.Response:
        if (refused := tape.refused(request)) is not None:
            return refusal(*refused)
        if not request.headers.get("X-MBX-APIKEY"):  # historicalTrades wants a key (MARKET_DATA)
            return web.json_response({"code": -2014, "msg": "API-key format invalid."}, status=401)
        limit = _limit(request, 500, 1000)
        if limit is None:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'"}, status=400
            )
        sid = request.query.get("symbol", "")
        if "fromId" in request.query:
            page = tape.from_id(sid, int(request.query["fromId"]), limit)
        else:
            page = tape.last(sid, limit)
        return web.json_response([trade_json(t) for t in page])

    async def recent(request: web.Request) -> web.Response:
        if (refused := tape.refused(request)) is not None:
            return refusal(*refused)
        limit = _limit(request, 500, 1000)
        if limit is None:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'"}, status=400
            )
        return web.json_response([trade_json(t) for t in tape.last(request.query.get("symbol", ""), limit)])

    async def aggregated(request: web.Request) -> web.Response:
        # each simulated trade is its own aggregate (no two share price, side and time): a = f = l = id
        if (refused := tape.refused(request)) is not None:
            return refusal(*refused)
        limit = _limit(request, 500, 1000)
        if limit is None:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'"}, status=400
            )
        q = request.query
        page = tape.trades.get(q.get("symbol", ""), [])
        if "fromId" in q:
            page = [t for t in page if t.trade_id >= int(q["fromId"])]
        if "startTime" in q:
            page = [t for t in page if t.ts_ms >= int(q["startTime"])]
        if "endTime" in q:
            page = [t for t in page if t.ts_ms <= int(q["endTime"])]
        if not {"fromId", "startTime", "endTime"} & set(q):
            page = page[-limit:]
        agg = [
            {
                "a": t.trade_id,
                "p": f"{t.price:.8f}",
                "q": f"{t.qty:.8f}",
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.ts_ms,
                "m": t.buyer_is_maker,
                "M": True,
            }
            for t in page[:limit]
        ]
        return web.json_response(agg)

    app.router.add_get(f"{prefix}/historicalTrades", historical)
    app.router.add_get(f"{prefix}/aggTrades", aggregated)
    app.router.add_get(f"{prefix}/trades", recent)


# ---- Bybit ----

BYBIT_ID_PREFIX = "2290000000"  # the fake's execId: this prefix + the simulated trade id


def bybit_routes(app: web.Application, tape: TradeTape) -> None:
    async def recent(request: web.Request) -> web.Response:
        if (refused := tape.refused(request)) is not None:
            # Bybit answers an IP over its limit with HTTP 403 and retCode 10006 in-body otherwise
            return web.json_response(
                {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 0},
                status=refused[0] if refused[0] != 418 else 403,
                headers={"X-Bapi-Limit-Reset-Timestamp": "0", "Retry-After": str(int(refused[1]))},
            )
        spot = request.query.get("category") == "spot"
        limit = _limit(request, 60 if spot else 500, 60 if spot else 1000)
        if limit is None:
            return web.json_response(
                {"retCode": 10001, "retMsg": "params error: limit", "result": {}, "time": 0}
            )
        sid = request.query.get("symbol", "")
        page = list(reversed(tape.last(sid, limit)))  # newest first
        items = [
            {
                "execId": f"{BYBIT_ID_PREFIX}{t.trade_id}",
                "symbol": sid,
                "price": f"{t.price:.8f}",
                "size": f"{t.qty:.8f}",
                "side": "Sell" if t.buyer_is_maker else "Buy",
                "time": str(t.ts_ms),
                "isBlockTrade": False,
            }
            for t in page
        ]
        return web.json_response(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": {"category": request.query.get("category"), "list": items},
                "time": 0,
            }
        )

    async def kline(request: web.Request) -> web.Response:
        """GET /v5/market/kline?category&symbol&interval&start&end&limit
        (https://bybit-exchange.github.io/docs/v5/market/kline): bars from the tape, newest first,
        limit 1..1000 (default 200), each [startTime, open, high, low, close, volume, turnover] as
        strings; bars with start <= startTime <= end."""
        if (refused := tape.refused(request)) is not None:
            return web.json_response(
                {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 0},
                status=refused[0] if refused[0] != 418 else 403,
                headers={"Retry-After": str(int(refused[1]))},
            )
        q = request.query
        limit = _limit(request, 200, 1000)
        step = BYBIT_INTERVALS_MS.get(q.get("interval", ""))
        if limit is None or step is None:
            return web.json_response({"retCode": 10001, "retMsg": "params error", "result": {}, "time": 0})
        start, end = int(q.get("start", 0)), int(q.get("end", 2**62))
        bars = [b for b in tape.bars(q.get("symbol", ""), step) if start <= b[0] <= end]
        rows = [[str(b[0]), *(f"{x:.8f}" for x in b[1:])] for b in reversed(bars)][:limit]
        return web.json_response(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": {"category": q.get("category"), "symbol": q.get("symbol"), "list": rows},
                "time": 0,
            }
        )

    app.router.add_get("/v5/market/recent-trade", recent)
    app.router.add_get("/v5/market/kline", kline)


BYBIT_INTERVALS_MS = {"1": 60_000, "5": 300_000, "15": 900_000, "60": 3_600_000, "D": 86_400_000}


# ---- OKX ----


def okx_routes(app: web.Application, tape: TradeTape) -> None:
    """GET /api/v5/market/history-trades?instId&type&after&before&limit
    (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-trades-history): newest first, limit
    max 100 (default 100); type 1 pages by tradeId (default), 2 by ts; `after` = records older than
    it, `before` = newer than it (tradeId only). Over the limit (20 requests / 2 s): HTTP 429 with
    code 50011."""

    async def history(request: web.Request) -> web.Response:
        if (refused := tape.refused(request)) is not None:
            return web.json_response(
                {
                    "code": "50011",
                    "msg": "Rate limit reached. Please refer to API documentation.",
                    "data": [],
                },
                status=429,
                headers={"Retry-After": str(int(refused[1]))},
            )
        q = request.query
        limit = _limit(request, 100, 100)
        if limit is None:
            return web.json_response({"code": "51000", "msg": "Parameter limit error", "data": []})
        by_ts = q.get("type") == "2"
        key = (lambda t: t.ts_ms) if by_ts else (lambda t: t.trade_id)
        tape_of = tape.trades.get(q.get("instId", ""), [])
        page = tape_of
        if "after" in q:
            page = [t for t in page if key(t) < int(q["after"])]
        if "before" in q and not by_ts:
            page = [t for t in page if t.trade_id > int(q["before"])]
        page = list(reversed(page))[:limit]  # newest first
        data = [
            {
                "instId": t.symbol.replace("/", "-"),
                "tradeId": str(t.trade_id),
                "px": f"{t.price:.8f}",
                "sz": f"{t.qty:.8f}",
                "side": "sell" if t.buyer_is_maker else "buy",
                "ts": str(t.ts_ms),
                "source": "0",
            }
            for t in page
        ]
        return web.json_response({"code": "0", "msg": "", "data": data})

    app.router.add_get("/api/v5/market/history-trades", history)


# ---- Kraken ----


def kraken_routes(app: web.Application, tape: TradeTape, price_dp: dict[str, int]) -> None:
    """GET /0/public/Trades?pair&since&count (https://docs.kraken.com/api/docs/rest-api/get-recent-trades):
    trades after `since` (seconds, or a nanosecond cursor as returned in `last`), oldest first, count
    max 1000 (default 1000); each trade [price, volume, time, b|s, m|l, misc, trade_id]. Over the
    limit Kraken answers HTTP 200 with error `EGeneral:Too many requests`."""

    async def trades(request: web.Request) -> web.Response:
        if tape.refused(request) is not None:
            return web.json_response({"error": ["EGeneral:Too many requests"]})
        q = request.query
        limit = _limit(request, 1000, 1000, key="count")
        if limit is None:
            return web.json_response({"error": ["EGeneral:Invalid arguments:count"]})
        pair = q.get("pair", "")
        since = int(q.get("since", "0") or 0)
        since_ns = since * 1_000_000_000 if since < 10**12 else since
        page = [t for t in tape.trades.get(pair, []) if t.ts_ms * 1_000_000 > since_ns][:limit]
        dp = price_dp.get(pair, 1)
        rows = [
            [
                f"{t.price:.{dp}f}",
                f"{t.qty:.8f}",
                t.ts_ms / 1000,
                "s" if t.buyer_is_maker else "b",
                "m",
                "",
                t.trade_id,
            ]
            for t in page
        ]
        last = str(page[-1].ts_ms * 1_000_000) if page else str(since_ns)
        return web.json_response({"error": [], "result": {pair: rows, "last": last}})

    app.router.add_get("/0/public/Trades", trades)


# ---- Coinbase Advanced Trade ----


def coinbase_routes(app: web.Application, tape: TradeTape, trade_json: Callable[[Trade], dict]) -> None:
    """GET /api/v3/brokerage/market/products/{product_id}/ticker?limit&start&end (Get Public Market
    Trades, what ccxt's coinbase `fetch_trades` calls): the most recent `limit` trades (max 1000)
    with start <= time < end (UNIX seconds), newest first; no cursor, so older trades are reached by
    moving `end`. Over the public limit: HTTP 429."""

    async def ticker(request: web.Request) -> web.Response:
        if (refused := tape.refused(request)) is not None:
            return web.json_response(
                {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"},
                status=429,
                headers={"Retry-After": str(int(refused[1]))},
            )
        limit = _limit(request, 100, 1000)
        if limit is None:
            return web.json_response({"error": "INVALID_ARGUMENT", "message": "limit"}, status=400)
        q = request.query
        start_ms = int(q["start"]) * 1000 if "start" in q else None
        end_ms = int(q["end"]) * 1000 if "end" in q else None
        page = [
            t
            for t in tape.trades.get(request.match_info["product_id"], [])
            if (start_ms is None or t.ts_ms >= start_ms) and (end_ms is None or t.ts_ms < end_ms)
        ]
        page = list(reversed(page))[:limit]
        return web.json_response({"trades": [trade_json(t) for t in page], "best_bid": "", "best_ask": ""})

    app.router.add_get("/api/v3/brokerage/market/products/{product_id}/ticker", ticker)
