"""Load check of `analogize serve`: 20 concurrent apply requests, and how the page answers meanwhile.

    .venv/bin/python benchmarks/web_load.py [--requests 20] [--method fewshot]

Starts the server on 127.0.0.1 (a free port) in this process, learns one edit with the method's
`tiny` preset through the server's own job code, then sends the apply requests at once from as
many client threads (gradio_client, the same HTTP API the page uses), each with one 256×256 photo.
While they run, a prober loads the page every 0.25 s. Prints per-request latency, the throughput
and the prober's worst latency; nothing but this machine is contacted.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from analogize.bench.corpus import crops, photos  # noqa: E402
from analogize.bench.edits import get_edit  # noqa: E402
from analogize.images import save_image  # noqa: E402
from analogize.web.app import serve  # noqa: E402

PROBE_SECONDS = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--method", default="fewshot")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="analogize-web-load-"))
    images = crops(photos(), 4 + args.requests, 256, np.random.default_rng(0))
    for index, image in enumerate(images[:4]):
        save_image(image, folder / "pairs" / "before" / f"p{index}.png")
        save_image(get_edit("tone")(image), folder / "pairs" / "after" / f"p{index}.png")
    photo_paths = []
    for index, image in enumerate(images[4:]):
        photo_paths.append(folder / "photos" / f"photo{index:02d}.png")
        save_image(image, photo_paths[-1])

    server = serve(folder / "work", "127.0.0.1", free_port(), 50, block=False)
    url, jobs = server.url, server.jobs
    job = jobs.start_training(sorted((folder / "pairs" / "before").iterdir()),
                              sorted((folder / "pairs" / "after").iterdir()), None, args.method, "tiny", None)
    while jobs.training_status(job).state == "running":
        time.sleep(0.2)
    assert jobs.training_status(job).state == "done", jobs.training_status(job).message

    probe_latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            urllib.request.urlopen(url, timeout=60).read()
            probe_latencies.append(time.perf_counter() - started)
            time.sleep(PROBE_SECONDS)

    def one_request(photo: Path) -> float:
        client = Client(url, verbose=False)
        started = time.perf_counter()
        client.predict([handle_file(str(photo))], job, None, 1.0, None, api_name="/run_apply")
        return time.perf_counter() - started

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.requests) as pool:
        latencies = list(pool.map(one_request, photo_paths))
    wall = time.perf_counter() - started
    stop.set()
    prober.join()
    server.close()

    print(f"{len(latencies)} of {args.requests} apply requests succeeded ({args.method} tiny, 256×256 photos)")
    print(f"wall {wall:.1f} s, {len(latencies) / wall:.2f} requests/s")
    print(f"request latency: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s")
    print(f"page loads during the run: {len(probe_latencies)}, median {statistics.median(probe_latencies) * 1000:.0f} ms, "
          f"max {max(probe_latencies) * 1000:.0f} ms")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
