"""Reading the lake: the catalog (views for shells and BI tools), `daedalus query`, the docs page."""
