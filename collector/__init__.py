"""The collector: exchange feeds → bounded queue → durable bronze segments.

Never imports duckdb or numba: it runs 24/7 on small machines and must stay small.
"""
