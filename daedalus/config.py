"""Configuration: pydantic models for every section, loaded defaults → YAML → environment → CLI flags.

Every model forbids unknown keys, so a misspelled key is an error naming its path, never a silent
default. Credentials are never read from YAML: S3 keys come from the environment or the AWS chain.
Imports only pydantic and yaml, so the collector can use it on a Pi without duckdb or numba.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from daedalus.errors import ConfigError

ENV_PREFIX = "DAEDALUS__"
# DuckDB's size syntax (SET memory_limit): a number, optional space, a 1000^i or 1024^i unit
_DUCKDB_SIZE = re.compile(
    r"^\s*(-1|\d+(\.\d+)?(e\d+)?\s*(b|bytes?|[kmgtp]i?b?|[kmgtp]ib))\s*$", re.IGNORECASE
)


# A VPIN bucket volume: 0 or less made every VPIN NULL, and `.nan` reached the SQL (issue 24).
BucketVolume = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class StorageConfig(_Section):
    root: str = "./lake"
    """Lake root: a local path or s3://bucket/prefix."""
    retain_replaced_minutes: float = Field(10.0, ge=0)
    """Files a build takes out of the model folders wait in `_trash/` this long (no reader needs them)."""
    raw_retirement: Literal["delete", "archive"] = "delete"
    """What `land` does with a raw segment once its rows are verified in bronze."""
    row_group_rows: int = Field(16384, ge=1024)
    """Rows per Parquet row group of silver/gold files. DuckDB buffers a whole row group per file
    while writing: at its default (122,880) a row group of order-book lists or ~80 feature columns
    is ~80 MB, at 16,384 ~10 MB (a Pi-profile build peaks ~130 MB lower), at no cost in speed."""


class CoinbaseConfig(_Section):
    ws_url: str = "wss://advanced-trade-ws.coinbase.com"
    """WebSocket endpoint."""
    products: list[str] = Field(default_factory=lambda: ["BTC-USD"])
    """Product ids as Coinbase spells them."""
    channels: list[Literal["level2", "market_trades", "ticker"]] = Field(
        default_factory=lambda: ["level2", "market_trades", "ticker"]
    )
    """Data channels (heartbeats are always subscribed, so quiet products stay open)."""
    use_jwt: bool = False
    """Sign subscriptions with a JWT; keys from COINBASE_API_KEY / COINBASE_API_SECRET."""


class ExchangeOptions(_Section):
    """What `ingestion.exchange_options.<exchange id>` hands to that ccxt exchange, after the venue's
    own options (so the user's win): a testnet, a proxy, another market type."""

    sandbox: bool = False
    """ccxt's set_sandbox_mode(True): the exchange's testnet urls (an error when it has none)."""
    urls: dict[str, Any] = Field(default_factory=dict)
    """Merged into the exchange's `urls` key by key (e.g. {api: {ws: {spot: wss://...}}})."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Merged into the exchange's `options` key by key (e.g. {defaultType: future})."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Other constructor keys of the ccxt exchange (e.g. timeout, httpsProxy, wsProxy, headers)."""


class IngestionConfig(_Section):
    sources: list[Literal["ccxt", "coinbase"]] = Field(default_factory=lambda: ["ccxt"])
    """Collectors to run: ccxt (ccxt.pro, 100+ exchanges) and/or coinbase (native Advanced Trade)."""
    exchanges: list[str] = Field(default_factory=lambda: ["binanceus"])
    """ccxt exchange ids for the ccxt source."""
    exchange_options: dict[str, ExchangeOptions] = Field(default_factory=dict)
    """Per id of `exchanges`, handed to the ccxt exchange after the venue's own options: `sandbox`
    (testnet), `urls` and `options` (merged key by key), `params` (constructor keys), e.g.
    {binance: {sandbox: true, options: {defaultType: future}, params: {timeout: 20000}}}."""
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USDT"])
    """Symbols in ccxt form (BTC/USDT)."""
    channels: list[Literal["ticker", "trades", "orderbook", "book_updates"]] = Field(
        default_factory=lambda: ["ticker", "trades", "book_updates"]
    )
    """Channels to collect: `book_updates` = every applied book update at full depth, with snapshots
    and hourly checkpoints (silver rebuilds the book from it); `orderbook` = top-`orderbook_levels`
    snapshots after every update, collected when named here, and instead of `book_updates` on a venue
    that streams no deltas (collector/venue_ccxt.py `book_deltas`)."""
    raw_format: Literal["parquet", "ndjson"] = "parquet"
    """Raw segment format: parquet (typed, recommended) or ndjson (legacy)."""
    batch_size: int = Field(1000, ge=1)
    """Rows per flush of a segment."""
    flush_interval_seconds: float = Field(5.0, gt=0)
    """Flush at least this often even when a batch is not full."""
    queue_maxsize: int = Field(50_000, ge=1)
    """Bound of the queue between collectors and the writer (records)."""
    queue_max_mb: float = Field(48.0, gt=0)
    """Bound of the same queue in memory (MB, estimated per record): full-depth books are ~12 KB each."""
    backpressure_timeout_seconds: float = Field(1.0, ge=0)
    """How long a collector waits on a full queue before dropping (and counting) a message."""
    segment_max_mb: float = Field(50.0, gt=0)
    """Rotate a segment when its file on disk reaches this size (also rotated at each hour)."""
    parquet_compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"
    """Parquet codec of raw segments."""
    parquet_compression_level: int = Field(3, ge=1, le=22)
    """zstd level (1-22)."""
    orderbook_levels: int = Field(20, ge=1, le=5000)
    """Levels per side kept in each bronze snapshot."""
    stale_after_seconds: float = Field(60.0, gt=0)
    """No data on a subscription for this long → reconnect, recorded in events."""
    backoff_initial_seconds: float = Field(1.0, gt=0)
    """First reconnect delay; doubles per failure, with full jitter."""
    backoff_max_seconds: float = Field(60.0, gt=0)
    """Cap of the reconnect delay."""
    proactive_reconnect_hours: float = Field(23.5, gt=0)
    """Reconnect before Binance's 24 h cut."""
    trade_cache_size: int = Field(10_000, ge=1000)
    """ccxt.pro trade cache per symbol (`tradesLimit`). Bronze rows are taken from each message as
    it arrives, not from this cache, so it only has to outlast one watch call; it is bounded because
    it holds whole trade dicts (about 1.5 KB each) for as long as the process runs."""
    heal_seconds: float = Field(120.0, ge=0)
    """Time bound of healing one trades gap from the venue's REST history (0 = do not heal)."""
    local_root: str | None = None
    """Where the collector writes raw segments when storage.root is on S3 (a local spool)."""
    upload_to_s3: bool = False
    """Upload every ready segment to storage.root's bucket right after it closes."""
    delete_after_upload: bool = False
    """Delete the local ready segment once its upload is verified."""
    health_file: str | None = None
    """Where `collect` writes its health JSON (default: <root>/_state/collector_health.json)."""
    coinbase: CoinbaseConfig = Field(default_factory=CoinbaseConfig)
    """Native Coinbase Advanced Trade collector."""

    @field_validator("exchange_options")
    @classmethod
    def _options_of_collected_exchanges(cls, value: dict[str, ExchangeOptions], info: Any) -> dict:
        exchanges = info.data.get("exchanges") or []  # validated before (declared above)
        unknown = sorted(set(value) - set(exchanges))
        if unknown:
            raise ValueError(
                f"'{unknown[0]}' is not in ingestion.exchanges ({', '.join(exchanges) or 'none'})"
            )
        return value


class ChannelConfig(_Section):
    enabled: bool = True
    """Build this channel's models."""


class SequentialParams(_Section):
    """The parameters of the sequential kernels (docs/features.md "Sequential"), each declared once.

    `etl.features` holds them (FeatureConfig inherits them); gold.orderbook_seq hands them to
    `daedalus_orderbook_seq` as one struct (`sequential_params()` in a model, udfs/columns.py
    `params_sql`), and the kernels read them as this model (udfs/series.py `SeqParams`). A new
    parameter is one field here plus its use in `series.series_sequential`."""

    horizons: list[int] = Field(default_factory=lambda: [5, 15, 60, 300, 900])
    """Trailing windows (seconds) of rolling features."""
    max_state_staleness_seconds: float = Field(300.0, gt=0)
    """A time gap between snapshots above this is a break in the series."""
    ofi_levels: int = Field(10, ge=1, le=1000)
    """Levels L of multi-level OFI."""
    ofi_decay_alpha: float = Field(0.5, ge=0)
    """MLOFI level weight w_m = exp(-alpha (m-1))."""
    use_dynamic_spread_regime: bool = True
    """Spread regime from the trailing percentile (true) or a fixed threshold (false)."""
    spread_regime_window: int = Field(300, ge=1)
    """Window (seconds) of the spread percentile."""
    spread_tight_percentile: float = Field(0.2, ge=0, le=1)
    """spread_pctile at or below this is tight."""
    spread_wide_percentile: float = Field(0.8, ge=0, le=1)
    """spread_pctile at or above this is wide."""
    tight_spread_threshold: float = Field(0.0001, ge=0)
    """Static regime: spread/mid at or below this is tight (per symbol)."""
    kyle_lambda_window: int = Field(300, ge=1)
    """Trailing window (seconds) of the Kyle lambda regression."""

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, v: list[int]) -> list[int]:
        return _positive_unique(v)

    @model_validator(mode="after")
    def _percentiles_ordered(self) -> SequentialParams:
        if self.spread_tight_percentile > self.spread_wide_percentile:
            raise ValueError("spread_tight_percentile must not exceed spread_wide_percentile")
        return self


def _positive_unique(v: list[int]) -> list[int]:
    if not v or any(x <= 0 for x in v) or len(set(v)) != len(v):
        raise ValueError("must be a non-empty list of distinct positive seconds")
    return sorted(v)


class FeatureConfig(SequentialParams):
    """Feature options of docs/features.md. Keys marked per-symbol may be overridden in etl.symbols."""

    max_levels: int = Field(20, ge=1, le=1000)
    """Levels per side kept in silver and used by gold features."""
    bands_bps: list[float] = Field(default_factory=lambda: [0, 5, 10, 25, 50, 100])
    """Edges of the depth bands in bps from mid; consecutive edges make one band [lo, hi)."""
    strict_book_deletes: list[str] = Field(default_factory=list)
    """Exchanges whose book updates never delete a level the book does not hold: there such a delete
    (inside the depth of the last load) breaks a book rebuilt from book_updates. Not Binance: its
    diffs aggregate 100 ms and delete unseen levels as a matter of course."""
    max_unserved_book_share: float = Field(0.005, ge=0, le=1)
    """Largest share of a series-day's book_updates messages that may go unserved (lost: a gap, a
    regression, refused levels, no book; stale or duplicate messages and a REST load without exchange
    time lose no update) before the build's data test sql/tests/book_unserved_share.sql fails, naming
    the series and the count."""
    bar_durations: list[int] = Field(default_factory=lambda: [1, 5, 30, 60, 300, 900, 3600])
    """Bar lengths (seconds) of gold bars."""
    enable_vpin: bool = True
    """Compute VPIN."""
    vpin_bucket_volume: BucketVolume | Literal["auto"] = "auto"
    """Bucket volume V in base units (finite, > 0), or auto (previous day volume / 50; per symbol)."""
    vpin_window_buckets: int = Field(50, ge=1)
    """Buckets n in the VPIN average."""
    vpin_classification: Literal["aggressor", "bvc"] = "aggressor"
    """Buy/sell split of a bucket: trade aggressor side, or bulk volume classification."""
    vpin_bvc_sigma_bars: int = Field(50, ge=2)
    """BVC: 1-minute bars in the causal sigma of price changes."""

    @field_validator("bands_bps")
    @classmethod
    def _bands_increasing(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or any(b <= a for a, b in zip(v, v[1:], strict=False)) or v[0] < 0:
            raise ValueError("must be at least two increasing, non-negative edges, e.g. [0, 5, 10]")
        return v

    @field_validator("bar_durations")
    @classmethod
    def _bar_durations(cls, v: list[int]) -> list[int]:
        return _positive_unique(v)


class SymbolOverride(_Section):
    """Per-symbol feature options (docs/features.md: vpin_bucket_volume is set per symbol)."""

    vpin_bucket_volume: BucketVolume | Literal["auto"] | None = None
    """Overrides etl.features.vpin_bucket_volume for this symbol."""
    tight_spread_threshold: float | None = Field(None, ge=0)
    """Overrides etl.features.tight_spread_threshold for this symbol."""


class EtlConfig(_Section):
    channels: dict[Literal["orderbook", "trades", "ticker"], ChannelConfig] = Field(
        default_factory=lambda: {c: ChannelConfig() for c in ("orderbook", "trades", "ticker")}
    )
    """Per-channel switches."""
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    """Feature options (docs/features.md)."""
    symbols: dict[str, SymbolOverride] = Field(default_factory=dict)
    """Per-symbol overrides keyed by ccxt symbol, e.g. {"BTC/USDT": {vpin_bucket_volume: 25}}."""
    slice_hours: float | Literal["auto"] = "auto"
    """Models with `slice_by` (the order-book models) build each day in slices of this many hours,
    one query per slice, its rows streamed into the partition's one file: memory follows the slice,
    not the day. Smaller saves memory,
    larger saves the per-slice lookback; results are identical. `auto`: per partition, the longest of
    24, 12, 8, 6, 4, 3, 2, 1, 0.5, 0.25 h in which no bronze channel it is built from has more than
    `slice_bronze_mb` in one slice (estimated from Parquet footers, daedalus/build/slicing.py). A
    quiet day is one query; one synthetic Binance symbol-day (20 levels, 10 books/s) gets 1 h slices
    and peaks at ~500-580 MB, where 6 h slices peak at ~1.1-1.3 GB (docs/benchmarks.md)."""
    slice_bronze_mb: float = Field(8.0, gt=0)
    """With slice_hours `auto`: compressed MB of one bronze channel a slice may hold. A full build's
    peak RSS grows ~25 MB per MB (that day: 1 h = 4.8 MB of books, ~530 MB; 6 h = 29 MB, ~1.1 GB)."""

    @field_validator("slice_hours")
    @classmethod
    def _slice_hours(cls, v: float | str) -> float | str:
        if v != "auto" and not 0 < float(v) <= 24:
            raise ValueError(f"{v!r}: slice_hours is 'auto' or hours in (0, 24]")
        return v

    def feature(self, key: str, symbol: str | None = None) -> Any:
        """A feature option, with the symbol's override where one is set."""
        if symbol is not None and symbol in self.symbols:
            value = getattr(self.symbols[symbol], key, None)
            if value is not None:
                return value
        return getattr(self.features, key)

    def sequential_params(self, symbol: str | None = None) -> SequentialParams:
        """The sequential kernels' parameters for `symbol` (its overrides applied)."""
        return SequentialParams(**{k: self.feature(k, symbol) for k in SequentialParams.model_fields})


class DuckDBConfig(_Section):
    memory_limit: str = "1GB"
    """DuckDB memory_limit of every connection."""
    threads: int | None = Field(None, ge=1)
    """None = DuckDB's default (all cores)."""
    temp_directory: str = ".daedalus_tmp"
    """Spill directory; always local disk, even when the lake is on S3."""
    max_temp_directory_size: str = "20GB"
    """Cap of the spill directory."""

    @field_validator("memory_limit", "max_temp_directory_size")
    @classmethod
    def _duckdb_size(cls, v: str) -> str:
        # checked here, so a bad value is blamed on its key, not on the first SET of some model
        if not _DUCKDB_SIZE.match(v):
            raise ValueError(
                f"{v!r} is not a DuckDB size: a number and a unit, e.g. 512MB, 1.5GB, 2GiB "
                "(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        return v.strip()


class S3Config(_Section):
    endpoint: str | None = None
    """host:port of an S3-compatible endpoint; None = AWS."""
    region: str = "us-east-1"
    """S3 region."""
    url_style: Literal["path", "vhost"] = "vhost"
    """path for most S3-compatible servers (MinIO, moto), vhost for AWS."""
    use_ssl: bool = True
    """https to the endpoint."""


class CompactionConfig(_Section):
    target_mb: float = Field(128.0, gt=0)
    """Not used any more: a partition is always one file (glob readers see it whole, issue 15);
    `daedalus compact` rewrites partitions of older lakes into that layout. Kept so configs load."""


class WatchConfig(_Section):
    poll_interval_seconds: float = Field(30.0, gt=0)
    """`daedalus watch`: seconds between cycles."""


class StatusConfig(_Section):
    max_age_seconds: float = Field(3600.0, gt=0)
    """`daedalus coverage` exits 10 when a series' newest silver row is older than this (seconds);
    `--max-age` overrides it."""


class Config(_Section):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Where the lake lives."""
    ingestion: IngestionConfig = Field(default_factory=IngestionConfig)
    """The collector."""
    etl: EtlConfig = Field(default_factory=EtlConfig)
    """Silver/gold builds."""
    duckdb: DuckDBConfig = Field(default_factory=DuckDBConfig)
    """Limits of every DuckDB connection."""
    s3: S3Config = Field(default_factory=S3Config)
    """S3 endpoint settings; keys only from the environment or the AWS credential chain."""
    compaction: CompactionConfig = Field(default_factory=CompactionConfig)
    """`daedalus compact`."""
    watch: WatchConfig = Field(default_factory=WatchConfig)
    """`daedalus watch`."""
    status: StatusConfig = Field(default_factory=StatusConfig)
    """`daedalus coverage` and the health page of `daedalus docs`."""
    project_dir: str | None = None
    """A user project (from `daedalus init`) whose models sit beside the built-in ones."""


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """DAEDALUS__SECTION__KEY=value → {"section": {"key": value}}; values parse as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else None
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    node = tree
    parts = dotted.split(".")
    for i, p in enumerate(parts[:-1]):
        if node.get(p) is None:  # absent, or a section with every key commented out
            node[p] = {}
        elif not isinstance(node[p], dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"{origin}: invalid value for '{where}': it must be a mapping of keys")
        node = node[p]
    node[parts[-1]] = value


def _describe(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    # union branches name themselves in the location (`constrained-float`, `literal['auto']`): not keys
    branch = re.compile(r"[a-z]+(-[a-z]+)+|literal\[.*\]|function-[a-z-]+\[.*\]")
    keys = [str(p) for p in first["loc"] if not branch.fullmatch(str(p))]
    path = ".".join(keys) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{origin}: unknown key '{path}'"
    return f"{origin}: invalid value for '{path}': {first['msg']}"


def _root_beside_file(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A relative local `storage.root` and a relative `project_dir` in a file are relative to that file
    (as for an auto-discovered daedalus.yaml), not to the working folder of whoever loads it; --root
    and the environment keep theirs (the working folder)."""
    here = path.resolve().parent
    storage = doc.get("storage")
    root = storage.get("root") if isinstance(storage, dict) else None
    if isinstance(root, str) and root and "://" not in root and not Path(root).expanduser().is_absolute():
        doc = {**doc, "storage": {**storage, "root": str((here / root).resolve())}}
    project_dir = doc.get("project_dir")
    if isinstance(project_dir, str) and project_dir and not Path(project_dir).expanduser().is_absolute():
        doc = {**doc, "project_dir": str((here / project_dir).resolve())}
    return doc


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load config: defaults → YAML file → DAEDALUS__* environment → `overrides` (dotted keys from CLI flags).

    A relative local `storage.root` or `project_dir` in the file is resolved against the file's folder.

    Raises ConfigError (exit code 2) naming the key path and the file on any unknown key, wrong type
    or out-of-range value.
    """
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        p = Path(path)
        origin = str(p)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the config file ({e.strerror or e})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark else str(p)
            raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        # A section whose keys are all commented out loads as None: it means "all defaults", as if absent.
        data = _root_beside_file({k: v for k, v in loaded.items() if v is not None}, p)
    env = _env_overrides(dict(os.environ if environ is None else environ))
    if env:
        origin = f"{origin} + environment"
        data = _deep_merge(data, env)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value, origin)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, origin)) from None
