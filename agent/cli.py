"""The server's clients on the command line: ``clusterwatch simulate`` publishes a simulated
cluster, ``clusterwatch agent`` is the sidecar that publishes a real node. ``server/cli.py``
adds these subcommands and configures logging; nothing here imports the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

log = logging.getLogger("clusterwatch.cli")

COMMANDS = ("simulate", "agent")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _simulate_parser(sub)
    _agent_parser(sub)


def run(args: argparse.Namespace, loop_factory: Any) -> int:
    """Run the ``simulate`` or ``agent`` subcommand; its exit code."""
    if args.command == "simulate":
        return simulate_main(args, loop_factory)
    return agent_main(args, loop_factory)


_SIMULATE_DESCRIPTION = """\
Publish a simulated Redis Cluster to a clusterwatch server: N masters with R replicas each,
the 16384 slots split evenly over the masters, every node saying hello, the masters
claiming their slots, then every node sending heartbeats with status fields (services,
partitions, thread pools, requests, ksqlDB queries) for the STATUS, HEALTH and CLUSTER
STATUS commands to show. Scripted faults make it fail, fail over and reshard on cue.

Nodes are named m1..mN (masters) and m1r1..mNrR (replicas). Their ids are the same on
every run. Faults (--fault, or one per line in --script), each at a time from the start
(5, 5s, 500ms):

  stop <node> at <t>                       the node goes silent
  resume <node> at <t>                     a silent node speaks again
  partition <node>[,<node>...] at <t> for <d>
                                           those nodes are silent for d, then resume
  failover <master> at <t>                 its first live replica takes over its slots
                                           at a new epoch
  migrate <slots> from <a> to <b> at <t>   b takes the slots (a-b[,c-d]) at a new epoch
  leave <node> at <t>                      the node leaves on purpose

Masters that still speak report a node silent for --node-timeout, as Redis Cluster's
gossip would."""

_SIMULATE_EXAMPLES = """\
examples:
  clusterwatch simulate --server 127.0.0.1:7379 --masters 3 --replicas 1
  clusterwatch simulate --fault 'stop m1 at 10' --fault 'failover m2 at 20' --duration 60
  clusterwatch simulate --masters 100 --replicas 2 --rate 0.5 --list   # show the nodes"""

_AGENT_DESCRIPTION = """\
Publish one real node to a clusterwatch server: the agent runs beside the node (or anywhere
that reaches it), reads it before every heartbeat and sends its hello, slot claims,
heartbeats and the failures it sees.

What it reads (--source, repeatable; later sources win, flags win over all):
  redis://[user:pass@]host:port, rediss://...   a Redis node: its own CLUSTER NODES line
                                                (id, address, role, master, epoch, slots),
                                                CLUSTER INFO and INFO; nodes it sees as
                                                fail? or fail become failure reports
  zeebe+http://host:9600                        a Zeebe broker's startup, ready and health
                                                probes, or a gateway's /actuator/health
  curity+http://host:4465/                      a Curity node's status document
  puppet+https://host:8140/status/v1/services   Puppet's services (?level=debug&timeout=5)
  ksqldb+http://host:8088/clusterStatus         this host's ksqlDB queries and store lags
Without a source, --addr and the other flags say who the node is, and --status-file,
--status-command or --set give its heartbeat fields.

A node that does not answer makes the agent withhold heartbeats (and say so in its log), so
clusterwatch fails it after its node timeout, as the cluster does; the agent keeps trying
and resumes when the node answers, and reconnects when clusterwatch restarts."""

_AGENT_EXAMPLES = """\
examples:
  clusterwatch agent --server 127.0.0.1:7379 --source redis://10.0.0.1:6379
  CLUSTERWATCH_PASSWORD=... clusterwatch agent --server cw:7379 --user publisher \\
      --source redis://127.0.0.1:6379 --interval 0.5
  clusterwatch agent --addr 10.0.0.5:9000 --role master --slots 0-5460 \\
      --status-command 'my-node-status --json'"""


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="HOST:PORT", default="127.0.0.1:7379",
                        help="clusterwatch server host:port (default: %(default)s)")
    parser.add_argument("--password", metavar="PASSWORD",
                        default=os.environ.get("CLUSTERWATCH_PASSWORD"),
                        help="AUTH password (default: $CLUSTERWATCH_PASSWORD, which keeps it "
                        "out of the process list)")
    parser.add_argument("--user", metavar="NAME",
                        default=None, help="AUTH user name (default: default)")
    parser.add_argument("--tls", action="store_true",
                        help="connect over TLS (the server's --tls-port), as redis-cli --tls")
    parser.add_argument("--cacert", metavar="PATH", default=None,
                        help="CA bundle the server certificate is verified against "
                        "(default: the system's)")
    parser.add_argument("--cert", metavar="PATH",
                        default=None, help="client certificate (PEM), for "
                        "tls-auth-clients yes")
    parser.add_argument("--key", metavar="PATH", default=None, help="private key of --cert (PEM)")
    parser.add_argument("--insecure", action="store_true",
                        help="with --tls, do not verify the server's certificate")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))


def _simulate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("simulate", help="publish a simulated cluster to a server",
                         description=_SIMULATE_DESCRIPTION, epilog=_SIMULATE_EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _client_options(sim)
    sim.add_argument("--masters", metavar="N", type=int, default=3, help="(default: %(default)s)")
    sim.add_argument("--replicas", metavar="N",
                     type=int, default=1, help="per master (default: %(default)s)")
    sim.add_argument("--rate", metavar="PER_SECOND", type=float, default=1.0,
                     help="heartbeats per node per second (default: %(default)s)")
    sim.add_argument("--host", metavar="ADDRESS", default="127.0.0.1",
                     help="address the simulated nodes announce (default: %(default)s)")
    sim.add_argument("--base-port", metavar="PORT", type=int, default=30001,
                     help="port of the first node, then one more per node (default: "
                     "%(default)s)")
    sim.add_argument("--hostnames", action="store_true",
                     help="announce hostnames (node-m1, ...) as well")
    sim.add_argument("--node-timeout", metavar="MS", type=int, default=15_000,
                     help="ms of silence after which live masters report a node "
                     "(default: %(default)s)")
    sim.add_argument("--fault", action="append", default=[], metavar="FAULT",
                     help="a scripted fault, e.g. 'stop m1 at 5' (repeatable)")
    sim.add_argument("--script", metavar="PATH", help="a file of faults, one per line")
    sim.add_argument("--duration", metavar="SECONDS", type=float, default=None,
                     help="seconds to run (default: until interrupted)")
    sim.add_argument("--once", action="store_true",
                     help="publish the initial state, then exit")
    sim.add_argument("--list", action="store_true", help="print the nodes and exit")


def _agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser("agent", help="publish a real node's hello and heartbeats",
                           description=_AGENT_DESCRIPTION, epilog=_AGENT_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _client_options(agent)
    agent.add_argument("--source", action="append", default=[], metavar="URL",
                       help="read the node from here before every heartbeat (repeatable): "
                       "redis://[user:pass@]host:port, rediss://..., zeebe+http://host:9600, "
                       "curity+http://host:4465/, puppet+https://host:8140/status/v1/services, "
                       "ksqldb+http://host:8088/clusterStatus; the flags below override it")
    agent.add_argument("--source-timeout", metavar="SECONDS", type=float, default=2.0,
                       help="seconds each source may take (default: %(default)s)")
    agent.add_argument("--addr", metavar="HOST:PORT[@BUSPORT]", default=None,
                       help="the node's address, host:port[@busport] (required without a "
                       "--source that knows it)")
    agent.add_argument("--node-id", metavar="ID", default=None,
                       help="default: the source's (a Redis node's own id), else sha1 of "
                       "'clusterwatch:<host>:<port>' of --addr")
    agent.add_argument("--hostname", metavar="NAME", default=None)
    agent.add_argument("--role", choices=("master", "replica"), default=None,
                       help="default: the source's, else master")
    agent.add_argument("--replicaof", metavar="ID",
                       default=None, help="the master's node id (replicas)")
    agent.add_argument("--epoch", metavar="N", type=int, default=None,
                       help="the node's config epoch (default: the source's, else 1)")
    agent.add_argument("--slots", metavar="RANGES",
                       default=None, help="slot ranges claimed, e.g. 0-5460,5470")
    agent.add_argument("--interval", metavar="SECONDS", type=float, default=1.0,
                       help="seconds between heartbeats (default: %(default)s)")
    agent.add_argument("--status-file", metavar="PATH", default=None,
                       help="JSON object of heartbeat fields, read before each heartbeat")
    agent.add_argument("--status-command", metavar="COMMAND", default=None,
                       help="shell command printing a JSON object of heartbeat fields, run "
                       "before each heartbeat")
    agent.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a fixed heartbeat field; VALUE is JSON, or else a string "
                       "(repeatable; overrides the file and the command)")
    agent.add_argument("--node-state", default=None,
                       choices=("BOOTING", "WAITING", "RUNNING", "ERROR", "STOPPING"))
    agent.add_argument("--serving", choices=("yes", "no"), default=None)
    agent.add_argument("--count", metavar="N", type=int, default=None,
                       help="send this many heartbeats, then exit")
    agent.add_argument("--leave-on-exit", action="store_true",
                       help="send a leave message when stopped")


def _run_client(factory: Any, coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a tool until it finishes, or until SIGTERM/SIGINT cancels it."""
    with asyncio.Runner(loop_factory=factory) as runner:
        task = runner.get_loop().create_task(coroutine)
        loop = runner.get_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, task.cancel)
        try:
            return runner.run(_await(task))
        except asyncio.CancelledError:
            return 0


async def _await(task: asyncio.Task[int]) -> int:
    return await task


def _slot_ranges(text: str) -> list[list[int]]:
    ranges = []
    for part in text.split(","):
        start, _, end = part.strip().partition("-")
        first, last = int(start), int(end or start)
        if not 0 <= first <= last <= 16383:
            raise ValueError(f"bad slot range {part!r}")
        ranges.append([first, last])
    return ranges


def simulate_main(args: argparse.Namespace, loop_factory: Any) -> int:
    from .respclient import RespClient, parse_hostport
    from .simulate import Simulation, describe, parse_fault, parse_script, run_remote

    try:
        faults = [parse_fault(text) for text in args.fault]
        if args.script:
            faults += parse_script(Path(args.script).read_text())
        sim = Simulation(masters=args.masters, replicas=args.replicas, rate=args.rate,
                         faults=faults, host=args.host, base_port=args.base_port,
                         node_timeout_ms=args.node_timeout, hostnames=args.hostnames)
        host, port = parse_hostport(args.server)
        tls = _tls(args)
    except (OSError, ValueError) as exc:
        print(f"clusterwatch simulate: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(describe(sim)))
        return 0
    client = RespClient(host, port, password=args.password, username=args.user, tls=tls)

    async def go() -> int:
        try:
            tally = await run_remote(sim, client, duration=args.duration, once=args.once)
        finally:
            await client.close()
        log.info("simulation done", extra=tally.summary())
        return 1 if tally.rejected else 0

    return _run_client(loop_factory, go())


def agent_main(args: argparse.Namespace, loop_factory: Any) -> int:

    from .respclient import RespClient, parse_hostport
    from .sidecar import AgentConfig, run_agent
    from .sources import source_kind

    try:
        fields: dict[str, Any] = {}
        for item in args.set:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--set {item!r}: expected KEY=VALUE")
            try:
                fields[key] = json.loads(raw)
            except ValueError:
                fields[key] = raw
        if args.node_state:
            fields["node_state"] = args.node_state
        if args.serving:
            fields["serving"] = args.serving == "yes"
        if not args.addr and not args.source:
            raise ValueError("give --addr or a --source")
        if args.addr:
            parse_hostport(args.addr.split("@", 1)[0])
        for url in args.source:
            source_kind(url)  # an unknown scheme is refused now, not at the first read
        config = AgentConfig(
            node_id=args.node_id, addr=args.addr, sources=args.source,
            source_timeout=args.source_timeout,
            hostname=args.hostname, role=args.role, replicaof=args.replicaof,
            epoch=args.epoch, slots=_slot_ranges(args.slots) if args.slots else None,
            interval=args.interval, status_file=args.status_file,
            status_command=args.status_command, fields=fields, count=args.count,
            leave_on_exit=args.leave_on_exit)
        host, port = parse_hostport(args.server)
        tls = _tls(args)
    except (OSError, ValueError) as exc:
        print(f"clusterwatch agent: {exc}", file=sys.stderr)
        return 2
    client = RespClient(host, port, password=args.password, username=args.user, tls=tls)
    return _run_client(loop_factory, run_agent(config, client))


def _tls(args: argparse.Namespace) -> Any:
    """The client TLS context of --tls/--cacert/--cert/--key/--insecure, or None."""
    from .respclient import tls_context

    if not args.tls:
        if args.cacert or args.cert or args.key:
            raise ValueError("--cacert, --cert and --key need --tls")
        return None
    return tls_context(cacert=args.cacert, cert=args.cert, key=args.key,
                       insecure=args.insecure)


