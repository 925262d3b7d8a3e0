"""``python -m server serve|migrate`` (also installed as ``mlgenai-server``)."""

from __future__ import annotations

import argparse
import logging
import sys

from server import logs
from server.settings import add_arguments, from_namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlgenai-server", description="The mlgenai gRPC server.")
    sub = parser.add_subparsers(dest="command")
    add_arguments(sub.add_parser("serve", help="run the server (default)"))
    add_arguments(sub.add_parser("migrate", help="upgrade the database schema to this version's"))
    args = parser.parse_args(argv if argv is not None else (sys.argv[1:] or ["serve"]))
    settings = from_namespace(args)

    from server.app import StartupError, serve
    from store import migrate
    from store.engine import make_engine

    if args.command == "migrate":
        logs.configure(settings.log_level, settings.log_format)
        engine = make_engine(settings.database_url)
        migrate.upgrade(engine)
        logging.getLogger("mlgenai.server").info("schema is at head", extra={"revision": migrate.head_revision()})
        engine.dispose()
        return 0
    try:
        serve(settings)
    except StartupError as exc:
        print(f"mlgenai-server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
