"""Fake exchanges on loopback for tests, `daedalus demo` and `daedalus bench collect`.

- `market`: a deterministic simulated market (several symbols, book dynamics, trade flow).
- `replay`: the real Binance capture, replayed in order at speed ×N.
- `binance`: a fake Binance spot server (WebSocket streams + REST depth) the real ccxt.pro client uses.
- `coinbase`: a fake Coinbase Advanced Trade WebSocket server.
Each server has fault knobs (abrupt close, close codes, half-open sockets, sequence gaps, malformed
frames, REST 429).
"""
