"""A full 16384-slot move, and heartbeats that carry `failing` sets, in this process.

    .venv/bin/python -m benchmarks.slot_move_bench
    .venv/bin/python -m benchmarks.slot_move_bench --runs 30 --nodes 100,1000

Three measurements, CPU time of this process (one core), medians of ``--runs``:

* **model**: ``ClusterModel.publish`` of the ``slots`` message that moves every slot from
  one master to another (the receiver claims them at a higher epoch), then of the old
  owner's ``slots`` message that no longer lists them; the two masters swap each round.
* **end to end**: the same two messages through ``BUS PUBLISH`` on a built (never started)
  server, then CLUSTER INFO, NODES, SLOTS and SHARDS through the command table and the
  RESP2 encoder, as a dashboard asks after a change: what the event loop spends on it.
* **heartbeat**: ``ClusterModel.publish`` of one heartbeat at N nodes (N/2 masters with
  a replica each) where every master's heartbeat lists one failed node in ``failing`` (an
  outage in progress; a model that does not know the field skips it), against the same
  heartbeats without the field.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import msgspec

from benchmarks.harness.inproc import built_server
from benchmarks.harness.runner import add_common, finish, parser
from clusterwatch.cluster import ClusterModel, ModelConfig

NUM_SLOTS = 16384
HOUR_MS = 3_600_000
T0 = 1_700_000_000_000


def msg(kind: str, node: str, epoch: int, seq: int, **fields: object) -> bytes:
    return msgspec.json.encode({"v": 1, "type": kind, "node": node, "epoch": epoch,
                                "seq": seq, **fields})


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.3f} ms"


def moves(reps: int) -> list[tuple[bytes, bytes]]:
    """Per round: the new owner's claim of every slot, then the old owner's empty claim."""
    rounds = []
    owner, other = "a", "b"
    for i in range(reps):
        epoch = 3 + i
        rounds.append((msg("slots", other, epoch, 1, ranges=[[0, NUM_SLOTS - 1]]),
                       msg("slots", owner, epoch, 2, ranges=[])))
        owner, other = other, owner
    return rounds


def setup() -> list[bytes]:
    return [msg("hello", "a", 1, 0, addr="10.0.0.1:7000"),
            msg("hello", "b", 2, 0, addr="10.0.0.2:7000"),
            msg("slots", "a", 1, 1, ranges=[[0, NUM_SLOTS - 1]])]


def bench_model(reps: int) -> str:
    model = ClusterModel(ModelConfig(node_timeout_ms=HOUR_MS))
    for data in setup():
        model.publish(data, T0)
    claim, drop = [], []
    for taker, leaver in moves(reps):
        start = time.process_time()
        model.publish(taker, T0)
        middle = time.process_time()
        model.publish(leaver, T0)
        claim.append(middle - start)
        drop.append(time.process_time() - middle)
        model.drain_events()
    return (f"model: claim of all slots {median_ms(claim)}, the old owner's empty claim "
          f"{median_ms(drop)}")


def bench_end_to_end(reps: int) -> str:
    run = built_server(port=0, node_timeout=HOUR_MS).encoded

    run(b"BUS", b"PUBLISH", *setup())
    views = ((b"CLUSTER", b"INFO"), (b"CLUSTER", b"NODES"), (b"CLUSTER", b"SLOTS"),
             (b"CLUSTER", b"SHARDS"))
    for argv in views:
        run(*argv)
    publish, rendered = [], []
    for taker, leaver in moves(reps):
        start = time.process_time()
        run(b"BUS", b"PUBLISH", taker, leaver)
        middle = time.process_time()
        for argv in views:
            run(*argv)
        publish.append(middle - start)
        rendered.append(time.process_time() - middle)
    return (f"end to end: BUS PUBLISH of the move {median_ms(publish)}, then CLUSTER "
          f"INFO+NODES+SLOTS+SHARDS {median_ms(rendered)}")


def cluster(count: int) -> tuple[list[bytes], Callable[[int, bool], list[bytes]]]:
    masters = count // 2
    share = NUM_SLOTS // masters
    ids = [f"m{i:05d}" for i in range(masters)] + [f"r{i:05d}" for i in range(masters)]
    first = []
    for i in range(masters):
        end = NUM_SLOTS - 1 if i == masters - 1 else (i + 1) * share - 1
        first.append(msg("hello", ids[i], i + 1, 0, addr=f"10.0.{i // 250}.{i % 250}:7000"))
        first.append(msg("slots", ids[i], i + 1, 1, ranges=[[i * share, end]]))
        first.append(msg("hello", ids[masters + i], i + 1, 0, role="replica",
                         replicaof=ids[i], addr=f"10.1.{i // 250}.{i % 250}:7000"))
    failed = ids[masters]  # a replica every master reports

    def beats(seq: int, failing: bool) -> list[bytes]:
        out = []
        for i, node in enumerate(ids):
            extra: dict[str, object] = {}
            if failing and i < masters:
                extra["failing"] = [failed]
            if node != failed:
                out.append(msg("heartbeat", node, i % masters + 1, seq, **extra))
        return out

    return first, beats


def bench_heartbeats(count: int, reps: int) -> str:
    results = {}
    for failing in (False, True):
        model = ClusterModel(ModelConfig(node_timeout_ms=HOUR_MS, max_nodes=2 * count))
        first, beats = cluster(count)
        for data in first:
            model.publish(data, T0)
        samples = []
        for rep in range(reps):
            batch = beats(10 + rep, failing)
            start = time.process_time()
            for data in batch:
                model.publish(data, T0 + rep)
            samples.append((time.process_time() - start) / len(batch))
        results[failing] = statistics.median(samples) * 1e6
    return (f"heartbeat at {count} nodes: {results[False]:.2f} us without `failing`, "
          f"{results[True]:.2f} us with every master listing one failed node")


def main() -> None:
    p = parser(__doc__, full_doc=False)
    add_common(p, "slot-move", runs=21, quick="3 runs, 100 nodes")
    p.add_argument("--nodes", default=None, help="node counts (default 100,1000)")
    args = p.parse_args()
    runs = 3 if args.quick and args.runs == 21 else args.runs
    nodes = args.nodes or ("100" if args.quick else "100,1000")
    lines = []
    for line in (bench_model(runs), bench_end_to_end(runs),
                 *(bench_heartbeats(int(n), runs) for n in nodes.split(","))):
        print(line, flush=True)
        lines.append(line)
    finish(args, "\n".join(lines) + "\n", [{"bench": "slot-move", "runs": runs, "line": line}
                                            for line in lines], echo=False)


if __name__ == "__main__":
    main()
