"""Fake-exchange fixtures: a real aiohttp server on 127.0.0.1 speaking Binance's or Coinbase's wire
protocol, the real collectors (ccxt.pro client included) and the real queue + sink on a temp lake.
Helpers live in fake_exchange.py (importable by the test modules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_exchange import CAPTURE


@pytest.fixture
def capture_path() -> Path:
    return CAPTURE
