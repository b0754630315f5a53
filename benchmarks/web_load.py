"""Load check of `analogize serve`: 20 concurrent applies from two signed-in users, with and without a
training running, and how fast the page loads meanwhile.

    .venv/bin/python benchmarks/web_load.py [--requests 20] [--method fewshot]

Starts the server on 127.0.0.1 (a free port) in this process with two accounts, learns one edit
with the method's `tiny` preset through the server's own job code, then runs two rounds:
1. idle: the apply requests sent at once from as many client threads (gradio_client, the HTTP API
   the page uses, signed in), alternating between the two users, one 256×256 photo each;
2. training: the same, while a second training (the `cpu` preset) runs in its child process.
In both a prober signs in and loads the page (its HTML and its config) every 0.25 s. A request
that raises or returns no result counts as failed. Nothing but this machine is contacted.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from analogize.data.corpus import crops, photos  # noqa: E402
from analogize.data.edits import get_edit  # noqa: E402
from analogize.images import save_image  # noqa: E402
from analogize.web.app import serve  # noqa: E402

PROBE_SECONDS = 0.25
USERS = {"ann": "load-test-ann", "bob": "load-test-bob"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--method", default="fewshot")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="analogize-web-load-"))
    images = crops(photos(), 4 + args.requests, 256, np.random.default_rng(0))
    pairs = [folder / "pairs" / side / f"p{index}.png" for side in ("before", "after") for index in range(4)]
    for index, image in enumerate(images[:4]):
        save_image(image, pairs[index])
        save_image(get_edit("tone")(image), pairs[4 + index])
    photo_paths = []
    for index, image in enumerate(images[4:]):
        photo_paths.append(folder / "photos" / f"photo{index:02d}.png")
        save_image(image, photo_paths[-1])

    server = serve(folder / "work", "127.0.0.1", free_port(), 50, credentials=USERS, block=False)
    jobs = server.jobs
    job = jobs.start_training(pairs[:4], pairs[4:], None, args.method, "tiny", None)
    while jobs.training_status(job).state == "running":
        time.sleep(0.2)
    assert jobs.training_status(job).state == "done", jobs.training_status(job).message

    rounds = {"idle": load_round(server.url, job, photo_paths)}
    training = jobs.start_training(pairs[:4], pairs[4:], None, args.method, "cpu", None)
    rounds["training"] = load_round(server.url, job, photo_paths)
    still_running = jobs.training_status(training).state == "running"
    jobs.cancel_training(training)
    server.close()

    print(f"{args.requests} apply requests at once from {len(USERS)} signed-in users ({args.method} tiny, 256×256 photos); "
          f"training during the second round: {args.method} cpu preset, still running at its end: {still_running}")
    print("| round | succeeded / failed | wall | requests/s | request latency median / max | page loads | page load median / max |")
    print("|---|---|---|---|---|---|---|")
    for name, result in rounds.items():
        latencies, probes = result["latencies"], result["probes"]
        print(f"| {name} | {len(latencies)} / {result['failures']} | {result['wall']:.1f} s | "
              f"{len(latencies) / result['wall']:.2f} | {statistics.median(latencies):.2f} s / {max(latencies):.2f} s | "
              f"{len(probes)} | {statistics.median(probes) * 1000:.0f} ms / {max(probes) * 1000:.0f} ms |")
    for name, result in rounds.items():
        for error in result["errors"]:
            print(f"{name}: failed: {error}")


def load_round(url: str, job: str, photo_paths: list[Path]) -> dict:
    """The applies at once (users taking turns) while the prober loads the page."""
    users = list(USERS.items())
    clients = [Client(url, auth=account, verbose=False) for account in users]
    probe_latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        opener = signed_in_opener(url, *users[0])
        while not stop.is_set():
            started = time.perf_counter()
            opener.open(url, timeout=60).read()
            opener.open(url + "config", timeout=60).read()
            probe_latencies.append(time.perf_counter() - started)
            time.sleep(PROBE_SECONDS)

    def one_request(index: int) -> float | str:
        started = time.perf_counter()
        try:
            answer = clients[index % len(clients)].predict([handle_file(str(photo_paths[index]))], job, None, 1.0, None,
                                                           api_name="/run_apply")
        except Exception as error:  # noqa: BLE001 - a load check counts every failure, whatever it is
            return f"{type(error).__name__}: {error}"
        return time.perf_counter() - started if answer and answer[2] else "no result returned"

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(photo_paths)) as pool:
        outcomes = list(pool.map(one_request, range(len(photo_paths))))
    wall = time.perf_counter() - started
    stop.set()
    prober.join()
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    return {"latencies": [outcome for outcome in outcomes if not isinstance(outcome, str)], "errors": errors,
            "failures": len(errors), "wall": wall, "probes": probe_latencies}


def signed_in_opener(url: str, user: str, password: str) -> urllib.request.OpenerDirector:
    """An HTTP client holding the login cookie, as a browser would after signing in."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    opener.open(url + "login", urllib.parse.urlencode({"username": user, "password": password}).encode()).read()
    return opener


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
