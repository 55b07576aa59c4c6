"""What who-may-publish costs (issue 23): ClusterModel.publish of heartbeats in batches of 16,
as BUS PUBLISH applies them, with no publisher (the checks skipped), as an admin with every
key (`default`), and as a user whose key pattern must match each node id (verdicts kept per
node); interleaved repetitions, medians. In-process: the checks' own cost, without the
socket and the reader around them.

    .venv/bin/python -m benchmarks.publish_rights_bench [--nodes 1000] [--runs 7] [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from benchmarks.harness.runner import add_common, finish, parser
from clusterwatch.cluster import ClusterModel, ModelConfig, Publisher
from clusterwatch.commands._acl_user import new_user


def heartbeats(nodes: int, rounds: int) -> list[bytes]:
    return [b'{"v":1,"type":"heartbeat","node":"node-%d","epoch":1,"seq":%d}' % (n, r)
            for r in range(1, rounds + 1) for n in range(nodes)]


def run(messages: list[bytes], publisher: Publisher | None) -> float:
    """Seconds per message, applied 16 at a time."""
    model = ClusterModel(ModelConfig(max_nodes=100_000))
    publish = model.publish
    for data in messages[:len(messages) // 10]:  # warm: the nodes exist, verdicts kept
        publish(data, 1, publisher)
    rest = messages[len(messages) // 10:]
    start = time.perf_counter()
    for first in range(0, len(rest), 16):
        for data in rest[first:first + 16]:
            publish(data, 2, publisher)
    return (time.perf_counter() - start) / len(rest)


def main() -> int:
    p = parser(__doc__, full_doc=False)
    add_common(p, "publish-rights", runs=7, quick="100 nodes, 10 rounds, 3 runs")
    p.add_argument("--nodes", type=int, default=None, help="(default 1000)")
    p.add_argument("--rounds", type=int, default=None, help="(default 40)")
    opts = p.parse_args()
    nodes = opts.nodes or (100 if opts.quick else 1000)
    rounds = opts.rounds or (10 if opts.quick else 40)
    reps = 3 if opts.quick and opts.runs == 7 else opts.runs
    messages = heartbeats(nodes, rounds)
    restricted = new_user("agent")
    restricted.keys.append("~node-*")
    cases: dict[str, Callable[[], Publisher | None]] = {
        "no publisher (checks skipped)": lambda: None,
        "default: admin, every key": lambda: Publisher("default", admin=True),
        "a user with ~node-*": lambda: Publisher("agent", may_write=restricted.may_write_key),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, make in cases.items():
            times[name].append(run(messages, make()))
    base = statistics.median(times["no publisher (checks skipped)"])
    lines = [f"{len(messages)} heartbeats of {nodes} nodes, 16 per batch, medians of "
             f"{reps}\n", "| publisher | µs per message | vs no publisher |", "|---|---|---|"]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median * 1e6:.3f} | {median / base - 1:+.1%} |")
    finish(opts, "\n".join(lines), [{"bench": "publish-rights", "publisher": name,
                                     "us_per_message": [v * 1e6 for v in values]}
                                    for name, values in times.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
