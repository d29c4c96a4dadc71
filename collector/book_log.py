"""Bronze `book_updates` rows (collector/schemas.py BOOK_UPDATES) from what a collector applied to a book.

A `BookLog` follows one book between two flushes and cuts what was applied into rows:
- `delta`: the levels one venue message changed, each once with its final absolute size (0 = the
  level was deleted). A level the book did not hold and the same message removed again is left out,
  and so is a delete of a level the book did not hold (the venue may send one; nothing was applied):
  a delta row only ever deletes levels a replay of the rows before it holds, so the build can treat
  any other delete as a break. A message whose every level was such a no-op still makes a row with
  no levels, so the venue's update ids stay contiguous.
- `snapshot`: a (re)load, at the depth the venue gave. A load that arrives as an empty book followed
  by its levels in the same message (OKX, Kraken) is one snapshot row.
Messages are told apart by the book's `nonce` (ccxt sets it after applying a message): a change seen
under a new nonce starts a new row. Within one frame there is one message, so one row per book.

`checkpoint` rows (the whole book held) are made by `checkpoint_row`; when they are written is the
collector's rule (docs/contracts.md "book_updates").
"""

from __future__ import annotations

from typing import Any

HOUR_NS = 3_600_000_000_000


def levels(side: dict[float, float], bids: bool) -> list[dict]:
    """{price: size} as the schema's structs, best first (sorted: neighbours compress better)."""
    if len(side) < 2:  # most deltas change a level or two per side: no sort
        return [{"price": p, "size": s} for p, s in side.items()]
    return [{"price": p, "size": s} for p, s in sorted(side.items(), reverse=bids)]


def book_levels(side: Any) -> list[dict]:
    """A ccxt book side (sorted [price, size, ...] lists, best first) as the schema's structs."""
    return [{"price": lvl[0], "size": lvl[1]} for lvl in side]


def update_row(
    base: dict,
    kind: str,
    bids: list[dict],
    asks: list[dict],
    timestamp_ns: int | None,
    first: int | None,
    last: int | None,
    prev: int | None,
    sync_rule: str | None = None,
) -> dict:
    return {
        **base,
        "timestamp": timestamp_ns,
        "kind": kind,
        "first_update_id": first,
        "last_update_id": last,
        "prev_update_id": prev,
        "bids": bids,
        "asks": asks,
        "sync_rule": sync_rule,
    }


class BookLog:
    """Changes applied to one book since the last flush, cut into (kind, bids, asks, nonce, ts) rows."""

    __slots__ = ("done", "kind", "nonce", "bids", "asks", "born", "trimming")

    def __init__(self) -> None:
        self.done: list[tuple[str, list[dict], list[dict], Any, Any]] = []
        self.kind: str | None = None  # the open row: "delta" | "snapshot" | None
        self.nonce: Any = None  # the book's nonce when the open row began
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.born: set[tuple[bool, float]] = set()  # levels the open delta row inserted
        # ccxt is trimming the book to its depth: the deletes belong to the row open (ccxt's trim is no
        # venue message; Binance sets the nonce after the levels, so a trim sees the next nonce)
        self.trimming = False

    def open(self, book: Any) -> None:
        """A message is being applied: the row it makes (a delta, possibly with no level: the message
        still advanced the venue's update ids) is open under the book's nonce."""
        nonce = book.get("nonce")
        if self.kind is None or nonce != self.nonce:
            self.close(book, nonce)
            self.kind, self.nonce = "delta", nonce

    def change(self, book: Any, bid: bool, price: float, size: float, inserted: bool) -> None:
        """One level the book applied: `size` its new size (0 = removed), `inserted` if it was new."""
        nonce = book.get("nonce")
        if self.kind is None or (nonce != self.nonce and not self.trimming):
            self.close(book, nonce)
            self.kind, self.nonce = "delta", nonce
        side = self.bids if bid else self.asks
        if self.kind == "snapshot":
            if size:
                side[price] = size
            else:
                side.pop(price, None)
        elif inserted:
            if price not in side:
                self.born.add((bid, price))
            side[price] = size
        elif not size and (bid, price) in self.born:  # came and went within this message
            self.born.discard((bid, price))
            del side[price]
        else:
            side[price] = size

    def reset(self, book: Any) -> None:
        """The book was (re)loaded (ccxt's `reset`, or a new book object; the caller closed what came
        before). A load with levels is a row of its own; an empty one stays open for the levels the
        same message stores next (a new empty load replaces it)."""
        self.kind, self.nonce = "snapshot", book.get("nonce")
        self.bids = {lvl[0]: lvl[1] for lvl in book["bids"]}
        self.asks = {lvl[0]: lvl[1] for lvl in book["asks"]}
        if self.bids or self.asks:
            self.close(book, self.nonce)

    def trim_load(self, bid: bool, prices: list[float]) -> bool:
        """ccxt trimmed a load just finished (no row open since): the load's row holds the levels
        kept. False when the last row is no load (the caller then applies the trim unlogged)."""
        if self.kind is not None or not self.done or self.done[-1][0] != "snapshot":
            return False
        gone = set(prices)
        kind, bids, asks, nonce, ts = self.done[-1]
        if bid:
            bids = [lvl for lvl in bids if lvl["price"] not in gone]
        else:
            asks = [lvl for lvl in asks if lvl["price"] not in gone]
        self.done[-1] = (kind, bids, asks, nonce, ts)
        return True

    def close(self, book: Any, nonce: Any) -> None:
        """Finish the open row; `nonce` is the book's nonce once its message was applied."""
        kind = self.kind
        if kind == "delta" or (kind == "snapshot" and (self.bids or self.asks)):
            self.done.append(
                (kind, levels(self.bids, True), levels(self.asks, False), nonce, book.get("timestamp"))
            )
        self.kind = None
        self.bids, self.asks = {}, {}
        if self.born:
            self.born = set()

    def take(self, book: Any) -> list[tuple[str, list[dict], list[dict], Any, Any]]:
        """Every row since the last flush (the open one finished at the book's current nonce)."""
        self.close(book, book.get("nonce"))
        done, self.done = self.done, []
        return done
