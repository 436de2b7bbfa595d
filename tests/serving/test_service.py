"""The HTTP service as a user runs it: ``recbole-hiertcn serve DIR`` in its own process on the
loopback address. Answers equal the in-process stream; bad input is a 4xx that names the
problem and leaves the state as it was; two servers on one Redis share users."""

import concurrent.futures
import json
import os
import subprocess
import sys
import time

import pytest

from recbole_hiertcn.serving import StreamingHierTCN, load_artifact
from recbole_hiertcn.serving.artifact import write_artifact
from tests.serving.helpers import history, served_model
from tests.conftest import free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    model = served_model(gap_decay=86_400.0)
    folder = tmp_path_factory.mktemp("served") / "model"
    write_artifact(model.core, model.item_tokens, model.user_tokens, model.session_rule,
                   str(folder), dataset_name="tiny")
    return load_artifact(str(folder)), str(folder)


def start_server(folder, *options):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "recbole_hiertcn.serving", "serve", folder, "--port", str(port),
         *options], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not answer /health within 60 s")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def server(artifact):
    process, url = start_server(artifact[1])
    yield url
    stop(process)


def events_of(model, user, n_sessions, seed):
    items, times, _ = history(n_sessions, seed=seed)
    return [{"user": user, "item": model.item_tokens[i], "time": float(t)}
            for i, t in zip(items, times)]


def test_health_names_the_model(server, artifact):
    body = httpx.get(server + "/health").json()
    assert body["status"] == "ok" and body["model_version"] == artifact[0].version
    assert body["items"] == artifact[0].core.n_items - 1 and body["store"] == "MemoryStateStore"


def test_recommendations_equal_the_in_process_stream(server, artifact):
    model = artifact[0]
    reference = StreamingHierTCN(model)
    events = events_of(model, "alice", 12, seed=5)
    for start in range(0, len(events), 10):
        answer = httpx.post(server + "/events", json={"events": events[start:start + 10]})
        assert answer.status_code == 200 and answer.json() == {
            "applied": len(events[start:start + 10])}
    reference.observe_many([(e["user"], e["item"], e["time"]) for e in events])
    for when in (events[-1]["time"] + 5, events[-1]["time"] + 7_200):  # same / new session
        got = httpx.get(server + "/users/alice/recommendations",
                        params={"k": 7, "time": when}).json()["items"]
        expected = reference.recommend("alice", k=7, time=when)
        assert [g["item"] for g in got] == [item for item, _ in expected]
        assert [g["score"] for g in got] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert httpx.get(server + "/users/alice").json()["events"] == len(events)


def test_unknown_user_starts_empty(server):
    answer = httpx.get(server + "/users/nobody-yet/recommendations", params={"k": 3})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 3
    assert httpx.get(server + "/users/nobody-yet").json()["events"] == 0


@pytest.mark.parametrize("event, status, message", [
    ({"user": "bob", "item": "no-such-item", "time": 2e6}, 404, "no-such-item"),
    ({"user": "bob", "item": "i3", "time": "yesterday"}, 422, "time"),
    ({"user": "bob", "item": "i3"}, 422, "time"),
    ({"user": "bob", "item": "i3", "time": True}, 422, "time"),
    ({"user": "bob", "item": "i3", "time": "2000000"}, 422, "time"),
    ({"user": "", "item": "i3", "time": 2e6}, 422, "user"),
    ({"user": "bob", "item": "i3", "time": 10.0}, 409, "time order"),
])
def test_bad_events_get_a_4xx_naming_the_problem_and_change_nothing(server, event, status,
                                                                   message):
    httpx.post(server + "/events", json={"events": [{"user": "bob", "item": "i2",
                                                      "time": 1e6}]})
    before = httpx.get(server + "/users/bob").json()
    answer = httpx.post(server + "/events", json={
        "events": [{"user": "bob", "item": "i5", "time": 3e6}, event]})
    assert answer.status_code == status
    assert message in json.dumps(answer.json())
    assert httpx.get(server + "/users/bob").json() == before


def test_an_event_older_than_the_stored_last_one_is_a_conflict(server):
    httpx.post(server + "/events", json={"events": [{"user": "fay", "item": "i2", "time": 1e6}]})
    answer = httpx.post(server + "/events", json={
        "events": [{"user": "fay", "item": "i3", "time": 5e5}]})
    assert answer.status_code == 409 and "older than the user's last event" in answer.text
    assert httpx.get(server + "/users/fay").json()["events"] == 1


def test_an_empty_batch_applies_nothing(server):
    answer = httpx.post(server + "/events", json={"events": []})
    assert answer.status_code == 200 and answer.json() == {"applied": 0}


def test_nan_time_and_bad_parameters_are_refused(server):
    body = '{"events": [{"user": "carol", "item": "i3", "time": NaN}]}'
    answer = httpx.post(server + "/events", content=body,
                        headers={"content-type": "application/json"})
    assert answer.status_code in (400, 422) and "time" in answer.text
    assert httpx.get(server + "/users/carol/recommendations",
                     params={"k": 0}).status_code == 422
    assert httpx.get(server + "/users/carol/recommendations",
                     params={"time": "noon"}).status_code == 422
    assert httpx.post(server + "/events", content=b"not json",
                      headers={"content-type": "application/json"}).status_code == 422
    assert httpx.get(server + "/health").status_code == 200  # still serving


def test_concurrent_requests_for_one_user_all_apply(server):
    def post(n):
        return httpx.post(server + "/events", json={"events": [
            {"user": "dave", "item": f"i{1 + n % 39}", "time": 5e6}]}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, range(64))) == {200}
    assert httpx.get(server + "/users/dave").json()["events"] == 64


def test_two_servers_on_one_redis_share_users(artifact, redis_url):
    model, folder = artifact
    first, url_a = start_server(folder, "--redis", redis_url)
    second, url_b = start_server(folder, "--redis", redis_url)
    try:
        events = events_of(model, "erin", 6, seed=9)
        half = len(events) // 2
        assert httpx.post(url_a + "/events", json={"events": events[:half]}).status_code == 200
        assert httpx.post(url_b + "/events", json={"events": events[half:]}).status_code == 200
        reference = StreamingHierTCN(model)
        reference.observe_many([(e["user"], e["item"], e["time"]) for e in events])
        for url in (url_a, url_b):
            got = httpx.get(url + "/users/erin/recommendations", params={"k": 5}).json()
            assert [g["item"] for g in got["items"]] == [
                i for i, _ in reference.recommend("erin", k=5)]
            assert httpx.get(url + "/health").json()["store"] == "RedisStateStore"
    finally:
        stop(first)
        stop(second)


def test_serve_options_guard_the_real_server(artifact, tmp_path):
    """``serve --token-file --no-docs --max-body-bytes --max-users`` as a user starts it: the
    token guards all but /health, no API pages, a body over the limit is a 413 whether its
    length is declared or chunked, and memory keeps one user."""
    token_file = tmp_path / "token"
    token_file.write_text("tok-0123456789\n")
    process, url = start_server(artifact[1], "--token-file", str(token_file), "--no-docs",
                                "--max-body-bytes", "2048", "--max-users", "1")
    good = {"Authorization": "Bearer tok-0123456789"}
    try:
        assert "tok-0123456789" not in " ".join(process.args)
        one = {"events": [{"user": "ann", "item": "i3", "time": 1e6}]}
        assert httpx.post(url + "/events", json=one).status_code == 401
        assert httpx.get(url + "/docs", headers=good).status_code == 404
        assert httpx.get(url + "/openapi.json", headers=good).status_code == 404
        assert httpx.post(url + "/events", json=one, headers=good).status_code == 200
        many = {"events": [{"user": "ann", "item": "i3", "time": 1e6 + n} for n in range(60)]}
        answer = httpx.post(url + "/events", json=many, headers=good)
        assert answer.status_code == 413 and "2048 bytes" in answer.json()["detail"]
        body = json.dumps(many).encode()

        def chunks():  # no Content-Length
            for start in range(0, len(body), 512):
                yield body[start:start + 512]

        answer = httpx.post(url + "/events", content=chunks(),
                            headers={**good, "content-type": "application/json"})
        assert answer.status_code == 413
        assert httpx.get(url + "/users/ann", headers=good).json()["events"] == 1
        other = {"events": [{"user": "ben", "item": "i3", "time": 1e6}]}
        assert httpx.post(url + "/events", json=other, headers=good).status_code == 200
        assert httpx.get(url + "/users/ann", headers=good).json()["events"] == 0  # evicted
    finally:
        stop(process)
