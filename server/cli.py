"""``clusterwatch`` command line: ``serve`` runs the server; ``simulate`` and ``agent``, the
server's clients, live in ``agent/cli.py``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

from agent import cli as client_tools
from commands import AclFileError

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
                 "max_query_buffer", "output_buffer_limit", "output_buffer_soft_limit",
                 "output_buffer_soft_seconds", "slowlog_log_slower_than",
                 "slowlog_max_len", "latency_monitor_threshold", "event_loop", "log_level",
                 "log_format", "node_timeout", "fail_after", "fail_rule", "require_full_coverage",
                 "max_message_size", "max_nodes", "forget_after", "myid", "health_responsive_grace",
                 "health_awareness_grace", "http_port", "bus", "bus_stream", "bus_maxlen",
                 "bus_retention_ms", "bus_publish_timeout", "bus_snapshot_interval",
                 "bus_wait_replicas", "aclfile", "acllog_max_len", "protected_mode",
                 "pubsub_hard_limit", "pubsub_soft_limit", "pubsub_soft_seconds",
                 "journal_size", "tls_port", "tls_cert_file", "tls_key_file",
                 "tls_ca_cert_file", "tls_auth_clients", "tls_protocols", "tls_http",
                 "http_max_clients"):
        default = getattr(defaults, name)
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                           help=_HELP.get(name, "") + f"(default: {default!r})")
    serve.add_argument("--demo", dest="demo", action="store_true", default=None,
                       help="feed the embedded bus from a simulated cluster of 3 masters and "
                       "3 replicas, so CLUSTER INFO answers cluster_state:ok at once")


_HELP = {
    "http_port": "port of the HTTP status mirror (Zeebe, Curity, Puppet, ksqlDB paths) on "
                 "the same bind; 0 is off ",
    "http_max_clients": "HTTP connections open at once, idle or long-polling; past it a "
                        "new one gets a 503 ",
    "node_timeout": "ms without a message before a node is pfail ",
    "fail_after": "ms a node stays pfail before it is fail without a quorum of failure "
                  "reports; 0 means 2 x node-timeout ",
    "fail_rule": "auto, redis or timer: redis = a pfail node is fail only when a majority "
                 "of slot-serving masters report it; timer = that or fail-after; auto = timer "
                 "until the first fail_report arrives, redis after ",
    "require_full_coverage": "yes/no: cluster_state is fail while a slot is unserved ",
    "max_message_size": "bytes; larger node messages are rejected ",
    "max_nodes": "nodes the model holds; messages from more new nodes are rejected ",
    "forget_after": "ms of silence after which a node is forgotten as CLUSTER FORGET "
                    "would; 0 never ",
    "health_responsive_grace": "ms HEALTH LIVE tolerates an unresponsive event loop ",
    "health_awareness_grace": "ms HEALTH LIVE tolerates lost cluster or partition-leader "
                              "awareness ",
    "bus": "'memory', or a Redis Stream shared by several instances: "
           "redis://[user:pass@]host:port[/db], rediss://..., "
           "redis+sentinel://host:26379[,host:26379]/<master-name>[/db] ",
    "bus_stream": "stream key on the Redis bus ",
    "bus_maxlen": "trim the stream with XADD MAXLEN ~ N; 0 keeps everything ",
    "bus_retention_ms": "trim the stream with XADD MINID ~ (now - ms); 0 keeps everything ",
    "bus_publish_timeout": "ms BUS PUBLISH waits for its messages to be applied here ",
    "bus_snapshot_interval": "ms between compacted snapshots of the Redis bus ",
    "bus_wait_replicas": "replicas that must acknowledge each append (Redis WAIT) ",
    "aclfile": "Redis users.acl file of ACL users, read at start and by ACL LOAD, "
               "written by ACL SAVE ",
    "protected_mode": "yes/no: without a default-user password, refuse clients that are "
                      "not on 127.0.0.1, ::1 or the Unix socket ",
    "output_buffer_soft_limit": "bytes queued for a client that, held for "
                                "output-buffer-soft-seconds, disconnect it; 0 is off ",
    "pubsub_hard_limit": "bytes queued for a subscriber past which it is disconnected ",
    "pubsub_soft_limit": "bytes queued for a subscriber that, held for pubsub-soft-seconds, "
                         "disconnect it ",
    "journal_size": "transitions BUS JOURNAL keeps ",
    "tls_port": "port of the TLS RESP listener beside --port; 0 is off ",
    "tls_cert_file": "PEM server certificate (chain) for the TLS port and HTTPS ",
    "tls_key_file": "PEM private key of --tls-cert-file ",
    "tls_ca_cert_file": "PEM CA bundle that client certificates are verified against ",
    "tls_auth_clients": "yes/no/optional: client certificates on the TLS port are required, "
                        "not asked for, or verified when presented ",
    "tls_protocols": "space-separated TLS versions, e.g. 'TLSv1.2 TLSv1.3'; empty is "
                     "TLSv1.2 and TLSv1.3 ",
    "tls_http": "yes/no: serve --http-port as HTTPS with the same certificate and key "
                "(client certificates verified if presented, never required) ",
    "myid": "CLUSTER MYID, 40 lowercase hex digits; by default sha1 of "
            "'clusterwatch:<hostname>:<port>', stable across restarts ",
}


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
    # What start-up built (modules, the command table, the demo's first model) lives as long
    # as the process: frozen out of the collector's sight, full collections scan only what
    # came later (about 58k objects, 15-20 ms less per full collection).
    gc.collect()
    gc.freeze()
    await server.serve_forever()


def serve(config: ServerConfig) -> int:
    factory = _event_loop_factory(config.event_loop)
    try:
        server = Server(config)
    except ConfigError as exc:
        log.error("invalid configuration", extra={"error": str(exc)})
        print(f"clusterwatch: {exc}", file=sys.stderr)
        return 2
    except (OSError, AclFileError) as exc:
        log.error("cannot load the ACL file", extra={"aclfile": config.aclfile,
                                                      "error": str(exc)})
        print(f"clusterwatch: aclfile: {exc}", file=sys.stderr)
        return 2
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
    client_tools.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command in client_tools.COMMANDS:
        logs.configure(args.log_level, "text")
        return client_tools.run(args, _event_loop_factory("auto"))
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
