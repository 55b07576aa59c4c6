"""``clusterwatch`` command line: ``serve`` runs the server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import logs
from .app import VERSION, Server
from .config import ConfigError, ServerConfig, load_config

log = logging.getLogger("clusterwatch.cli")


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the server",
                           description="Run the clusterwatch server. Every flag can also be "
                           "set as CLUSTERWATCH_<NAME> in the environment or in a TOML file.")
    serve.add_argument("--config", dest="config_file", help="TOML config file")
    defaults = ServerConfig()
    for name in ("bind", "port", "unix_socket", "requirepass", "max_clients", "timeout",
                 "max_inline_size", "max_bulk_length", "max_multibulk_length",
                 "max_query_buffer", "output_buffer_limit", "slowlog_log_slower_than",
                 "slowlog_max_len", "latency_monitor_threshold", "event_loop", "log_level",
                 "log_format"):
        default = getattr(defaults, name)
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                           help=f"(default: {default!r})")


def _event_loop_factory(choice: str) -> object:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("event_loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _serve(server: Server) -> None:
    await server.start()
    await server.serve_forever()


def serve(config: ServerConfig) -> int:
    factory = _event_loop_factory(config.event_loop)
    server = Server(config)
    with asyncio.Runner(loop_factory=factory) as runner:  # type: ignore[arg-type]
        try:
            runner.run(_serve(server))
        except OSError as exc:
            log.error("cannot listen", extra={"error": str(exc)})
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clusterwatch",
                                     description="Cluster status and health over the Redis "
                                     "protocol.")
    parser.add_argument("--version", action="version", version=f"clusterwatch {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        flags = {k: v for k, v in vars(args).items() if k not in ("command", "config_file")}
        try:
            config = load_config(flags=flags, config_file=args.config_file)
        except ConfigError as exc:
            print(f"clusterwatch: {exc}", file=sys.stderr)
            return 2
        logs.configure(config.log_level, config.log_format)
        return serve(config)
    return 2


if __name__ == "__main__":
    sys.exit(main())
