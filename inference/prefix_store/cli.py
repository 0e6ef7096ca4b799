"""The prefix store's command-line options of `inference.serve` and their WHOLEDOC_PREFIX_STORE* variables."""

from __future__ import annotations

import argparse
import os

from inference.prefix_store.config import GIB, PrefixStoreConfig


def _env(name: str, default):
    return os.environ.get(name) or default


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prefix store (docs/prefix-store.md)")
    g.add_argument("--prefix-store", default=_env("WHOLEDOC_PREFIX_STORE", None), metavar="URL",
                   help="keep document-prefix KV snapshots in file:///folder or s3://bucket?endpoint=host:port"
                        "&secure=0 (credentials: WHOLEDOC_S3_ACCESS_KEY / WHOLEDOC_S3_SECRET_KEY) and restore them "
                        "instead of recomputing, across restarts and replicas (default: $WHOLEDOC_PREFIX_STORE; "
                        "off when unset)")
    g.add_argument("--prefix-store-min-tokens", type=int,
                   default=int(_env("WHOLEDOC_PREFIX_STORE_MIN_TOKENS", 128)),
                   help="write a snapshot of prefixes at least this long (default 128: one block; where a restore "
                        "starts to beat recomputing is measured by inference.bench_prefix_store --crossover)")
    g.add_argument("--prefix-store-tail-tokens", type=int,
                   default=int(_env("WHOLEDOC_PREFIX_STORE_TAIL_TOKENS", 512)),
                   help="a snapshot also keeps the window state at the block boundaries of the prompt's last N tokens, "
                        "where another task or question about the same document leaves it (default 512; 0: off)")
    g.add_argument("--prefix-store-max-gib", type=float, default=float(_env("WHOLEDOC_PREFIX_STORE_MAX_GIB", 64)),
                   help="size cap of all snapshots; least recently used go first (default 64)")
    g.add_argument("--prefix-store-max-age-days", type=float,
                   default=float(_env("WHOLEDOC_PREFIX_STORE_MAX_AGE_DAYS", 7)),
                   help="snapshots unused this long are deleted (default 7)")
    g.add_argument("--prefix-store-restore-timeout", type=float,
                   default=float(_env("WHOLEDOC_PREFIX_STORE_RESTORE_TIMEOUT", 60)),
                   help="seconds a request waits for a restore before computing its prefix (default 60)")


def config_from_args(args: argparse.Namespace) -> PrefixStoreConfig | None:
    """The store's config, or None when no URL is given (the store is off)."""
    if not args.prefix_store:
        return None
    return PrefixStoreConfig(args.prefix_store, access_key=os.environ.get("WHOLEDOC_S3_ACCESS_KEY") or None,
                             secret_key=os.environ.get("WHOLEDOC_S3_SECRET_KEY") or None,
                             min_tokens=args.prefix_store_min_tokens, tail_tokens=args.prefix_store_tail_tokens,
                             max_bytes=int(args.prefix_store_max_gib * GIB),
                             max_age_s=args.prefix_store_max_age_days * 86400.0,
                             restore_timeout_s=args.prefix_store_restore_timeout)
