"""The `dynaquant` command: run the service, submit batches, read status."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from dynaquant import commands
from worker.settings import get_settings


def add_up(sub: argparse._SubParsersAction) -> None:
    """Arguments of `dynaquant up`."""
    up = sub.add_parser("up", help="run Redis (if none answers), workers, the web app and Flower")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--workers", type=int, default=1, help="worker processes, one job at a time each (0: the API only)")
    flower = up.add_mutually_exclusive_group()
    flower.add_argument("--flower-port", type=int, default=5555)
    flower.add_argument("--no-flower", action="store_true")
    up.add_argument("--loglevel", default="INFO")


def add_prepare(sub: argparse._SubParsersAction) -> None:
    """Arguments of `dynaquant prepare`."""
    prepare = sub.add_parser("prepare", help="assemble a model and build every precision level before serving")
    prepare.add_argument("models", nargs="*", help="model names (default: the default model)")


def run_prepare(models: Sequence[str]) -> int:
    """`dynaquant prepare` in its own process (the command line imports no model runtime)."""
    return subprocess.call([sys.executable, "-m", "worker.prepare", *models])


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="dynaquant", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_up(sub)
    add_prepare(sub)
    commands.add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from dynaquant.up import run_up

        if args.workers < 0:
            raise SystemExit("--workers must be 0 (the API only, workers elsewhere) or more")
        flower_port = None if args.no_flower else args.flower_port
        return run_up(args.host, args.port, args.workers, flower_port, get_settings().home_path, args.loglevel)
    if args.command == "prepare":
        return run_prepare(args.models)
    return commands.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
