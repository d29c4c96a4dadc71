"""Daedalus: an open market-data lakehouse for mid-frequency crypto trading."""

__version__ = "0.1.0"
