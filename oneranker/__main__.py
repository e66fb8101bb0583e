"""Command line: ``python -m oneranker {prepare,reproduce} ...``.

Every argument is checked (config fields, paths, the output folder) before any work starts.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from .config import ConfigError, make_config
from .schema import DataError

SOURCES = ("adworld", "movielens", "taobao")


def parse_overrides(pairs: list[str]) -> dict:
    """``["world.n_users=500", "semantic_ids.levels=2"]`` -> dotted-key dict (values as literals)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set expects section.field=value, got {pair!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def cmd_prepare(args: argparse.Namespace) -> None:
    from .data import build_prepared, load_logs

    cfg = make_config(args.profile, seed=args.seed, **parse_overrides(args.set))
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise DataError(f"--out {out} exists and is not empty; pass --force to replace it")
    logs = load_logs(args.source, cfg, args.path)
    prepared = build_prepared(logs, cfg)
    prepared.save(out, overwrite=args.force)
    m = prepared.meta
    print(f"wrote {out}: {m['n_users']} users, {m['n_items']} ads, requests {m['n_requests']}, skips {m['skips']}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from .reproduce import run_notebooks

    make_config(args.profile)  # validate the profile before starting any kernel
    run_notebooks(args.profile, notebooks=args.notebooks, seed=args.seed, device=args.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oneranker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="logs -> prepared dataset folder (datasets on disk)")
    p.add_argument("--source", choices=SOURCES, required=True)
    p.add_argument("--path", help="folder with the source's files (movielens, taobao)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. --set semantic_ids.codebook_size=8")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_prepare)
    r = sub.add_parser("reproduce", help="execute the notebooks headlessly with papermill")
    r.add_argument("--profile", default="quick")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--notebooks", nargs="*", default=None, help="notebook files (default: all)")
    r.set_defaults(func=cmd_reproduce)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
