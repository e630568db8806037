"""What one fan-out invocation can post: Management API posts per second and CPU per post.

    python -m bench.postrate [--posts 4000] [--delay-ms 25] [--in-flight 64]

A `Broadcaster` (the code the stream and fan-out Lambdas run, with its real SigV4-signing client) posts one
ticket_status message to `--posts` connections of a stand-in Management API, in another process, that answers
every post after `--delay-ms` (what a PostToConnection costs on AWS: network and service time, 15-40 ms from a
Lambda in the same region). Prints one JSON line: posts per second of wall time, and the CPU seconds the posting
process spent per post (every thread: signing, HTTP, JSON). docs/broadcasts.md turns these into what a Lambda
of a given size can post (one vCPU per 1,769 MB of memory).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Connections(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.025

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        pass


def _serve(port_out, delay: float) -> None:
    _Connections.delay = delay
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Connections)
    server.daemon_threads = True
    server.request_queue_size = 256
    port_out.put(server.server_address[1])
    server.serve_forever()


class _NoRows:
    """The posts are to connections that exist: no row is looked up or pruned."""

    def in_room(self, room: str) -> list[str]:
        raise AssertionError("not used")

    def remove_if_connected_before(self, connection_id: str, cutoff: int) -> None:
        raise AssertionError(f"post to {connection_id} failed")


def measure(posts: int, delay_ms: float, in_flight: int) -> dict:
    from botocore.credentials import Credentials

    from chalicelib.broadcast import Broadcaster
    from chalicelib.management_api import ManagementApi

    port_out: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(port_out, delay_ms / 1000), daemon=True)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port_out.get(timeout=10)}/dev"
        credentials = Credentials("AKIDEXAMPLE", "secret")
        client = ManagementApi(endpoint, "us-east-1", credentials, max_connections=in_flight)
        broadcaster = Broadcaster(lambda: client, _NoRows())  # type: ignore[arg-type]
        update = {"ticket_id": "s" * 26 + "-A1", "status": "held", "expires_at": "2026-12-04T20:00:00Z", "seq": "1"}
        payload = json.dumps({"type": "ticket_status", "updates": [update]})
        ids = [f"conn{i:012d}=" for i in range(posts)]
        broadcaster.post_slice(ids[:in_flight], [payload])  # warm: connections open, code paths loaded
        cpu, wall = time.process_time(), time.perf_counter()
        broadcaster.post_slice(ids, [payload])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        server.terminate()
    return {
        "posts": posts,
        "delay_ms": delay_ms,
        "in_flight": in_flight,
        "posts_per_second": round(posts / wall),
        "cpu_ms_per_post": round(1000 * cpu / posts, 3),
        "cpu_bound_posts_per_vcpu_second": round(posts / cpu) if cpu else None,
        "latency_bound_posts_per_second": round(in_flight * 1000 / delay_ms),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=4000)
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(measure(args.posts, args.delay_ms, args.in_flight)))


if __name__ == "__main__":
    main()
