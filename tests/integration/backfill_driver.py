"""Run `daedalus backfill` in this process against a fake Binance on 127.0.0.1:PORT (a test's
subprocess, so that it can be killed): argv = PORT, then the CLI arguments."""

import sys

from daedalus.cli import backfill
from daedalus.devkit.simulator.binance import FakeBinance

fake = FakeBinance(port=int(sys.argv[1]))  # not started here: only its urls and markets


def configure(ex):  # noqa: ANN001, ANN201
    fake.configure(ex, ["BTC/USDT"])
    ex.apiKey = "k"  # historicalTrades pages by id with a key
    ex.rateLimit = 2  # ccxt weighs historicalTrades at 200: 0.4 s a page


backfill.CONFIGURE["binance"] = configure

from daedalus.cli.app import app  # noqa: E402

app(sys.argv[2:])
