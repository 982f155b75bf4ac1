"""`regnn`: one subcommand per pipeline stage, calling the same library functions as the workflow.

Heavy imports happen inside each command so `regnn --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo_data(args: argparse.Namespace) -> None:
    from regnn.data.synthetic import SyntheticSettings, write_dataset

    settings = SyntheticSettings(seed=args.seed)
    if args.config:
        import yaml

        settings = SyntheticSettings(**(yaml.safe_load(args.config.read_text()) or {}).get("demo_data", {}))
    write_dataset(args.out, settings)
    print(f"wrote a synthetic REACT dataset to {args.out}")


def _clean(args: argparse.Namespace) -> None:
    from regnn.data.cleanup import clean_dataset

    splits = [args.split] if args.split else None
    moves = clean_dataset(args.root, splits=splits, dry_run=args.dry_run)
    verb = "would move" if args.dry_run else "moved"
    for move in moves:
        print(f"{verb}\t{move.source}\t{move.target}")
    print(f"{verb} {len(moves)} file(s)", file=sys.stderr)


def _index(args: argparse.Namespace) -> None:
    from regnn.data.index import index_split

    out = args.out or Path("results/dataset") / args.split
    n = index_split(args.root, args.split, out / "index.tsv", out / "emotions.h5", frames=args.frames)
    print(f"indexed {n} mirrored samples of {args.split} into {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regnn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo-data", help="write a synthetic dataset in the REACT 2024 layout")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=Path, help="a config YAML whose demo_data section sets the size")
    p.set_defaults(func=_demo_data)

    p = commands.add_parser("clean", help="move nested pre-extracted feature files up one folder")
    p.add_argument("root", type=Path)
    p.add_argument("--split", choices=("train", "val", "test"))
    p.add_argument("--dry-run", action="store_true", help="list the moves without moving anything")
    p.set_defaults(func=_clean)

    p = commands.add_parser("index", help="check a split and cache its index and emotions")
    p.add_argument("root", type=Path)
    p.add_argument("--split", required=True)
    p.add_argument("--out", type=Path, help="output folder (default results/dataset/SPLIT)")
    p.add_argument("--frames", type=int, default=750)
    p.set_defaults(func=_index)

    return parser


def main(argv: list[str] | None = None) -> int:
    from regnn.data.layout import DatasetError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DatasetError as err:
        print(f"regnn {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
