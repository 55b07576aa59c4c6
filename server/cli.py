"""``clusterwatch`` command line: ``serve`` runs the server; ``simulate`` and ``agent``, the
server's clients, live in ``agent/cli.py``.

``serve``'s flags come from the settings table (``config.SETTINGS``): one flag per setting,
in its group, with its help line, default and unit. Values are checked by ``load_config``,
which names the flag, environment variable or TOML key a bad value came from; a refused
flag or value prints the subcommand's own usage and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

from clusterwatch.agent import cli as client_tools
from clusterwatch.commands import AclFileError

from . import logs
from .app import VERSION, Server
from .config import GROUPS, SETTINGS, ConfigError, ServerConfig, effective_toml, load_config

log = logging.getLogger("clusterwatch.cli")

_DESCRIPTION = """\
A cluster status and health server that speaks the Redis protocol: nodes (or an agent
beside each) publish hello, heartbeat, slot and failure messages; clusterwatch answers
CLUSTER INFO, CLUSTER NODES, INFO, STATUS, HEALTH and friends to redis-cli, every Redis
client library, redis_exporter and Kubernetes probes."""

_EXAMPLES = """\
examples:
  clusterwatch serve --demo                       a simulated cluster, port 7379
  redis-cli -p 7379 cluster info                  ask it how the cluster is
  clusterwatch agent --server 127.0.0.1:7379 --source redis://10.0.0.1:6379
  clusterwatch serve --config /etc/clusterwatch/clusterwatch.toml --print-config

'clusterwatch COMMAND --help' explains each command."""

_SERVE_DESCRIPTION = """\
Run the server. Every setting is a flag here, a CLUSTERWATCH_<NAME> environment variable
(CLUSTERWATCH_NODE_TIMEOUT=5000) and a key of a TOML file's [server] table (node_timeout =
5000); flags win over the environment, which wins over the file. yes|no settings also take
true/false, on/off and 1/0; a yes|no flag given alone means yes."""

_SERVE_EXAMPLES = """\
examples:
  clusterwatch serve --demo --http-port 7380
  clusterwatch serve --bind 0.0.0.0 --requirepass s3cret --node-timeout 5000
  clusterwatch serve --bus redis://127.0.0.1:6379 --http-port 7380   # one of several
  clusterwatch serve --config clusterwatch.toml --print-config       # check, do not run"""


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]
                  ) -> argparse.ArgumentParser:
    serve = sub.add_parser("serve", help="run the server", description=_SERVE_DESCRIPTION,
                           usage="clusterwatch serve [--config PATH] [--print-config] "
                           "[--SETTING VALUE ...]",
                           epilog=_SERVE_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--print-config", action="store_true",
                       help="print the settings this would run with, as TOML (passwords "
                       "masked), and exit")
    groups = {name: serve.add_argument_group(name) for name in GROUPS}
    for setting in SETTINGS:
        options: dict[str, object] = {"dest": setting.name, "default": None,
                                      "metavar": setting.value_name,
                                      "help": setting.help_line().replace("%", "%%")}
        if setting.kind == "bool":
            options.update(nargs="?", const="yes")
        groups[setting.group].add_argument(setting.flag, **options)  # type: ignore[arg-type]
    return serve


def _event_loop_factory(choice: str) -> object:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("--event-loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _serve(server: Server) -> None:
    await server.start()
    # What start-up built (modules, the command table, the demo's first model) lives as long
    # as the process: frozen out of the collector's sight, full collections scan only what
    # came later (about 58k objects, 15-20 ms less per full collection).
    gc.collect()
    gc.freeze()
    await server.serve_forever()


def serve(config: ServerConfig) -> int:
    try:
        factory = _event_loop_factory(config.event_loop)
        server = Server(config)
    except ConfigError as exc:
        log.error("invalid configuration", extra={"error": str(exc)})
        print(f"clusterwatch: {exc}", file=sys.stderr)
        return 2
    except (OSError, AclFileError) as exc:
        log.error("cannot load the ACL file", extra={"aclfile": config.aclfile,
                                                      "error": str(exc)})
        print(f"clusterwatch: --aclfile {config.aclfile}: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=factory) as runner:  # type: ignore[arg-type]
        try:
            runner.run(_serve(server))
        except OSError as exc:
            log.error("cannot listen", extra={"error": str(exc)})
            return 1
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and each subcommand's own (for errors in its words)."""
    parser = argparse.ArgumentParser(prog="clusterwatch", description=_DESCRIPTION,
                                     epilog=_EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"clusterwatch {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    client_tools.add_parsers(sub)
    return parser, dict(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in client_tools.COMMANDS:
        logs.configure(args.log_level, "text")
        return client_tools.run(args, _event_loop_factory("auto"))
    flags = {setting.name: getattr(args, setting.name) for setting in SETTINGS
             if setting.name != "config_file"}
    try:
        config = load_config(flags=flags, config_file=args.config_file)
    except ConfigError as exc:
        commands["serve"].error(str(exc))
    if args.print_config:
        print(effective_toml(config), end="")
        return 0
    logs.configure(config.log_level, config.log_format)
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
