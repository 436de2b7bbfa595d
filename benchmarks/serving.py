"""Serving speed: per-event updates, recommendation latency, HTTP round trips, state size.

    python -m benchmarks.serving [--artifact DIR] [--items 34000] [--users 2000]
                                 [--events 60000] [--requests 1000] [--http-requests 2000]
                                 [--concurrency 1 8] [--ef-search 64 128 512] [--repeats 3]

Without ``--artifact`` it serves a HierTCN of the default settings (properties/model/
HierTCN.yaml) with random weights over ``--items`` items, written and loaded as an export.
Events are generated (users with sessions of 1-8 events, minutes apart inside a session, hours
to days between). One torch thread. Measured, each ``--repeats`` times and reported as medians:

* ``observe`` events per second at batch 1 and batch 256 (in-memory store);
* ``recommend`` latency p50 / p99 (top 10) with exact retrieval and with a FAISS HNSW32 index
  at each ``--ef-search``, and the index's recall@10 against exact;
* HTTP round trips p50 / p99 against ``recbole-hiertcn serve`` on the loopback address, for
  each ``--concurrency``: that many clients, each alternating one-event POSTs and
  recommendation GETs;
* bytes per user: the stored state (what Redis holds) and the in-memory arrays.

Targets (issue 13, this CPU, one thread): batched observe >= 10,000 events/s; exact recommend
p99 <= 20 ms at 34,000 items; state <= 8 KB per user with the default model.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch

from recbole_hiertcn.core.network import HierTCNCore
from recbole_hiertcn.core.settings import HierTCNSettings
from recbole_hiertcn.serving import FaissRetrieval, StreamingHierTCN, load_artifact
from recbole_hiertcn.serving.artifact import write_artifact

TARGETS = {"observe_256": 10_000.0, "exact_p99_ms": 20.0, "state_bytes": 8 * 1024}


def random_artifact(folder, n_items, seed=0):
    torch.manual_seed(seed)
    core = HierTCNCore(HierTCNSettings.from_mapping({}), n_items)
    tokens = ["[PAD]"] + [f"item{n}" for n in range(1, n_items)]
    write_artifact(core, tokens, ["[PAD]"], "time_gap", folder, dataset_name="random")
    return folder


def generate_events(model, n_users, n_events, seed=0):
    """``(user, item, time, session id)`` in time order, users interleaved."""
    rng = np.random.default_rng(seed)
    items = model.item_tokens[1:]
    clock = rng.integers(1_600_000_000, 1_600_100_000, n_users).astype(np.float64)
    left = rng.integers(0, 8, n_users) + 1
    session = np.zeros(n_users, np.int64)
    events = []
    for _ in range(n_events):
        user = int(rng.integers(n_users))
        events.append((f"user{user}", items[int(rng.integers(len(items)))], float(clock[user]),
                       f"{user}-{session[user]}"))
        left[user] -= 1
        if left[user] == 0:
            clock[user] += float(rng.integers(3_600, 3 * 86_400))
            left[user] = rng.integers(0, 8) + 1
            session[user] += 1
        else:
            clock[user] += float(rng.integers(20, 600))
    events.sort(key=lambda event: event[2])
    return events


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def time_observe(model, events, batch):
    stream = StreamingHierTCN(model)
    start = time.perf_counter()
    if batch == 1:
        for user, item, when, session in events:
            stream.observe(user, item, when, session)
    else:
        for first in range(0, len(events), batch):
            stream.observe_many(events[first:first + batch])
    return len(events) / (time.perf_counter() - start), stream


def time_recommend(stream, users, when):
    latencies, results = [], []
    for n, user in enumerate(users):
        # half the requests continue the running session, half open a new one
        at = when[user] + (7_200.0 if n % 2 else 30.0)
        start = time.perf_counter()
        results.append(stream.recommend(user, k=10, time=at))
        latencies.append((time.perf_counter() - start) * 1e3)
    return latencies, results


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_round_trips(folder, events, users, when, requests, concurrency):
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "recbole_hiertcn.serving", "serve", folder,
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(timeout=30) as client:
            for first in range(0, len(events), 1000):
                client.post(url + "/events", json={"events": [
                    {"user": u, "item": i, "time": t, "session": s}
                    for u, i, t, s in events[first:first + 1000]]})
        post_ms, get_ms = [], []
        lock = threading.Lock()
        per_client = requests // concurrency

        def client_loop(worker):
            rng = np.random.default_rng(worker)
            local_post, local_get = [], []
            with httpx.Client(timeout=30) as client:
                for n in range(per_client):
                    user = users[int(rng.integers(len(users)))]
                    if n % 2:
                        start = time.perf_counter()
                        client.get(f"{url}/users/{user}/recommendations",
                                   params={"k": 10, "time": when[user] + 30})
                        local_get.append((time.perf_counter() - start) * 1e3)
                    else:
                        start = time.perf_counter()
                        answer = client.post(url + "/events", json={"events": [
                            {"user": f"http{worker}", "item": events[n][1],
                             "time": 1_700_000_000.0 + n, "session": "one"}]})
                        local_post.append((time.perf_counter() - start) * 1e3)
                        assert answer.status_code == 200, answer.text
            with lock:
                post_ms.extend(local_post)
                get_ms.extend(local_get)

        threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(concurrency)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        return post_ms, get_ms, (len(post_ms) + len(get_ms)) / elapsed
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", help="an exported model (default: random weights)")
    parser.add_argument("--items", type=int, default=34_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--http-requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8],
                        help="concurrent HTTP clients, one measurement per value")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 512],
                        help="HNSW efSearch values, one measurement per value")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as work:
        folder = args.artifact or random_artifact(os.path.join(work, "model"), args.items)
        model = load_artifact(folder)
        settings = model.settings
        print(f"model {model.version}: {model.core.n_items - 1} items, embedding "
              f"{settings.embedding_size}, GRU {settings.num_layers}x{settings.hidden_size}, "
              f"TCN {list(settings.tcn_channels)} kernel {settings.kernel_size} dilations "
              f"{list(settings.dilations)} (receptive field {settings.receptive_field}); "
              f"1 torch thread", flush=True)
        events = generate_events(model, args.users, args.events)
        single = events[:min(len(events), 10_000)]
        rates = {1: [], 256: []}
        for _ in range(args.repeats):
            rates[1].append(time_observe(model, single, 1)[0])
            rate, stream = time_observe(model, events, 256)
            rates[256].append(rate)
        when = {}
        for user, _, at, _ in events:
            when[user] = at
        rng = np.random.default_rng(1)
        users = [f"user{int(u)}" for u in rng.integers(args.users, size=args.requests)
                 if f"user{int(u)}" in when]
        exact_runs = [time_recommend(stream, users, when) for _ in range(args.repeats)]
        exact_ms = [statistics.median(run[0][i] for run in exact_runs)
                    for i in range(len(users))]
        faiss_rows = []
        for ef_search in args.ef_search:
            build = time.perf_counter()
            faiss_stream = StreamingHierTCN(model, store=stream.store, retrieval=FaissRetrieval(
                model, index="HNSW32", ef_search=ef_search))
            build_s = time.perf_counter() - build
            faiss_runs = [time_recommend(faiss_stream, users, when) for _ in range(args.repeats)]
            faiss_ms = [statistics.median(run[0][i] for run in faiss_runs)
                        for i in range(len(users))]
            recall = np.mean([len({i for i, _ in a} & {i for i, _ in b}) / 10
                              for a, b in zip(exact_runs[0][1], faiss_runs[0][1])])
            faiss_rows.append((
                f"recommend top 10, FAISS HNSW32 efSearch {ef_search}: p50 / p99 ms",
                f"{percentile(faiss_ms, 50):.2f} / {percentile(faiss_ms, 99):.2f}",
                f"recall@10 vs exact {recall:.3f}; index built in {build_s:.1f} s"))
        state = stream.state(users[0])
        stored = len(state.to_bytes())
        in_memory = (state.long_term.nbytes + state.session_sum.nbytes + state.recent.nbytes
                     + state.seen.nbytes)
        http_rows = []
        for concurrency in args.concurrency:
            post_ms, get_ms, http_rate = http_round_trips(folder, events, users, when,
                                                          args.http_requests, concurrency)
            http_rows += [
                (f"HTTP POST one event, {concurrency} client(s): p50 / p99 ms",
                 f"{percentile(post_ms, 50):.2f} / {percentile(post_ms, 99):.2f}", ""),
                (f"HTTP GET top 10, {concurrency} client(s): p50 / p99 ms",
                 f"{percentile(get_ms, 50):.2f} / {percentile(get_ms, 99):.2f}",
                 f"{http_rate:,.0f} requests/s in all")]

    exact_p99 = percentile(exact_ms, 99)
    observe_256 = statistics.median(rates[256])
    rows = [
        ("observe, batch 1 (events/s)", f"{statistics.median(rates[1]):,.0f}", ""),
        ("observe, batch 256 (events/s)", f"{observe_256:,.0f}",
         verdict(observe_256 >= TARGETS["observe_256"], ">= 10,000")),
        ("recommend top 10, exact: p50 / p99 ms",
         f"{percentile(exact_ms, 50):.2f} / {exact_p99:.2f}",
         verdict(exact_p99 <= TARGETS["exact_p99_ms"], "p99 <= 20 ms")),
        *faiss_rows,
        *http_rows,
        ("state per user: stored bytes / arrays in memory", f"{stored:,} / {in_memory:,}",
         verdict(stored <= TARGETS["state_bytes"], "<= 8 KB")),
    ]
    print(f"\n{len(events):,} events of {len(when):,} users; {len(users)} recommendation "
          f"requests; medians of {args.repeats} repeats\n")
    print("| measure | value | target / note |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


def verdict(met, target):
    return f"{target}: {'met' if met else 'MISSED'}"


if __name__ == "__main__":
    sys.exit(main())
