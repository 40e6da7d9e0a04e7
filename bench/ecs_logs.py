"""CloudWatch → StageLog → SQLite through the ECS log follower, against moto over HTTP.

Measures our code path (paging by forward token, line writes, batching into SQLite),
not CloudWatch: moto answers on loopback, real GetLogEvents pages take ~50–200 ms.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parser, report  # noqa: E402


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--lines", type=int, default=50_000)
    args = p.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from agent.bus import Bus
    from agent.executors.cloudwatch import LogFollower
    from agent.logs.writer import LogWriter
    from store.store import Store

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    logs = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                 region_name="us-east-1").client(
        "logs", endpoint_url=f"http://{host}:{port}")
    logs.create_log_group(logGroupName="g")
    logs.create_log_stream(logGroupName="g", logStreamName="s")
    base = int(time.time() * 1000)
    for start in range(0, args.lines, 10_000):  # put_log_events takes ≤10,000 events
        logs.put_log_events(logGroupName="g", logStreamName="s", logEvents=[
            {"timestamp": base + i, "message": f"line {i:08d} " + "x" * 80}
            for i in range(start, min(start + 10_000, args.lines))])

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        writer = LogWriter(store, Bus())
        writer.start()
        log = writer.stage_log(1, "Unit Test", [])
        follower = LogFollower(logs, "g", "s")
        t0 = time.perf_counter()
        polls = 0
        while follower.events_read < args.lines:
            follower.poll(log)
            polls += 1
        log.flush()
        elapsed = time.perf_counter() - t0
        stored = store.count_log_lines(1)
        writer.stop()
        store.close()
    server.stop()
    report("ECS log follower: moto CloudWatch → SQLite", [
        ("lines", args.lines), ("stored", stored), ("polls", polls),
        ("seconds", elapsed), ("lines/s", args.lines / elapsed)],
        {"lines": args.lines, "stored": stored, "seconds": round(elapsed, 3),
         "lines_per_s": round(args.lines / elapsed)}, args.json)


if __name__ == "__main__":
    main()
