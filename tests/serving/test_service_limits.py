"""The service against hostile input, in process (FastAPI's TestClient): huge numbers, bodies,
ids and batches are refused with a short answer before they cost anything; a state store that
refuses or never answers is a 503 to retry; an optional bearer token guards all but /health;
the API pages can be switched off."""

import asyncio
import contextlib
import json
import socket
import threading
import time

import pytest

from recbole_hiertcn.serving import StreamingHierTCN
from recbole_hiertcn.serving.artifact import ServedModel, write_artifact
from recbole_hiertcn.serving.store import MemoryStateStore, StoreUnavailable
from tests.conftest import free_port
from tests.serving.helpers import served_model

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from recbole_hiertcn.serving import service  # noqa: E402
from recbole_hiertcn.serving.service import BodySizeLimit, check_token, create_app  # noqa: E402

TOKEN = "s3cret-Token_0123456789"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def model():
    return served_model()


def client_of(stream, **options):
    return TestClient(create_app(stream, **options))


@pytest.fixture
def stream(model):
    return StreamingHierTCN(model)


def event(user="u1", item="i3", time=1_000_000.0, **more):
    return dict(user=user, item=item, time=time, **more)


def assert_one_short_line(answer, limit=300):
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(answer.content) < limit
    return detail


# ---------------------------------------------------------------- times out of range
@pytest.mark.parametrize("time_text", ["9" * 400, "-" + "9" * 400, "1e400", "9007199254740993"])
def test_a_time_out_of_range_is_a_422_and_changes_nothing(stream, time_text):
    client = client_of(stream)
    body = '{"events": [{"user": "u1", "item": "i3", "time": %s}]}' % time_text
    answer = client.post("/events", content=body, headers=JSON)
    assert answer.status_code == 422
    assert "time" in assert_one_short_line(answer)
    assert stream.state("u1").events == 0


def test_the_largest_exact_time_and_millisecond_times_are_accepted(stream):
    client = client_of(stream)
    for when in (1_700_000_000_000, 2 ** 53):  # a Unix time in ms; the bound itself
        answer = client.post("/events", json={"events": [event(time=when)]})
        assert answer.status_code == 200
    assert stream.state("u1").last_time == 2.0 ** 53


def test_a_recommendation_time_out_of_range_is_a_422(stream):
    answer = client_of(stream).get("/users/u1/recommendations", params={"time": "1e400"})
    assert answer.status_code == 422 and "time" in assert_one_short_line(answer)


# ---------------------------------------------------------------- body size
def test_a_body_over_the_limit_is_a_413_and_never_applied(stream):
    client = client_of(stream, max_body_bytes=1024)
    small = json.dumps({"events": [event()]})
    assert client.post("/events", content=small, headers=JSON).status_code == 200
    # valid events, so only the size can refuse them
    large = json.dumps({"events": [event(time=1_000_001.0 + n) for n in range(30)]})
    assert len(large) > 1024
    answer = client.post("/events", content=large, headers=JSON)
    assert answer.status_code == 413 and "1024 bytes" in assert_one_short_line(answer)
    assert stream.state("u1").events == 1


def test_a_chunked_body_over_the_limit_is_a_413(stream):
    def chunks():  # no Content-Length: the body is counted while read
        yield b'{"events": ['
        for n in range(40):
            yield (json.dumps(event(time=1_000_000.0 + n)) + ",").encode()
        yield json.dumps(event(time=1_000_100.0)).encode() + b"]}"

    answer = client_of(stream, max_body_bytes=1024).post("/events", content=chunks(),
                                                         headers=JSON)
    assert answer.status_code == 413
    assert stream.state("u1").events == 0


@pytest.mark.parametrize("declared, status", [("abc", 400), ("9" * 30, 413), ("2048", 413)])
def test_a_content_length_over_the_limit_or_invalid_is_refused_unread(declared, status):
    reads = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        reads.append(scope)

    async def receive():  # pragma: no cover
        reads.append("body")
        return {"type": "http.request", "body": b"", "more_body": False}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/events",
             "headers": [(b"content-length", declared.encode())]}
    asyncio.run(BodySizeLimit(app, max_bytes=1024)(scope, receive, send))
    assert sent[0]["status"] == status and not reads


def test_the_limit_stops_reading_a_chunked_body_at_the_limit(stream):
    """A long chunked body (100 KB, 100 bytes a chunk): the middleware hands out no more than
    the limit plus one chunk, then answers 413."""
    app = create_app(stream, max_body_bytes=1000)
    handed = []

    async def receive():
        await asyncio.sleep(0)
        handed.append(100)
        return {"type": "http.request", "body": b"x" * 100, "more_body": len(handed) < 1000}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/events", "query_string": b"",
             "headers": [(b"content-type", b"application/json")], "http_version": "1.1",
             "scheme": "http", "server": ("test", 80), "client": ("test", 1), "root_path": ""}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert sum(handed) <= 1000 + 100


# ---------------------------------------------------------------- one-line 422s
def test_a_422_names_the_field_in_one_line_and_never_echoes_the_input(stream):
    client = client_of(stream)
    hostile = "x" * 9000
    for body in ({"events": [event(time=hostile)]}, {"events": [event(user=123, time=hostile)]},
                 {"events": hostile}, {"nothing": hostile}):
        answer = client.post("/events", json=body)
        assert answer.status_code == 422 and hostile[:50] not in answer.text
        assert assert_one_short_line(answer).startswith("body")
    answer = client.post("/events", content=b'{"events": [' + b"x" * 9000, headers=JSON)
    assert answer.status_code == 422 and b"xxxxxxxx" not in answer.content
    assert_one_short_line(answer)
    detail = assert_one_short_line(client.post("/events", json={"events": [event(time="noon")]}))
    assert detail.startswith("body.events.0.time")
    answer = client.get("/users/u1/recommendations", params={"k": "lots"})
    assert answer.status_code == 422 and assert_one_short_line(answer).startswith("query.k")


# ---------------------------------------------------------------- ids and batches
@pytest.mark.parametrize("field", ["user", "item", "session"])
def test_an_id_over_the_length_limit_is_a_422_and_changes_nothing(stream, field):
    client = client_of(stream)
    fine = dict(event(session="s"), **({} if field == "item" else {field: "x" * 256}))
    assert client.post("/events", json={"events": [fine]}).status_code == 200  # the limit itself
    before = len(stream.store)
    hostile = dict(event(time=1_000_001.0, session="s"), **{field: "x" * 10_000})
    answer = client.post("/events", json={"events": [hostile]})
    assert answer.status_code == 422
    assert f"{field} is 10000 characters long; at most 256" in assert_one_short_line(answer)
    assert len(stream.store) == before


def test_a_long_user_in_the_path_is_a_422(model):
    client = client_of(StreamingHierTCN(model, max_id_length=8))
    assert client.get("/users/" + "u" * 8).status_code == 200
    for path in ("/users/" + "u" * 9, "/users/" + "u" * 9 + "/recommendations"):
        answer = client.get(path)
        assert answer.status_code == 422 and "at most 8" in answer.json()["detail"]


def test_a_batch_over_the_limit_is_a_413_and_applies_nothing(stream):
    client = client_of(stream, max_events=3)
    events = [event(time=1_000_000.0 + n) for n in range(4)]
    answer = client.post("/events", json={"events": events})
    assert answer.status_code == 413 and "at most 3" in assert_one_short_line(answer)
    assert stream.state("u1").events == 0
    assert client.post("/events", json={"events": events[:3]}).json() == {"applied": 3}


def test_a_non_string_user_is_refused_over_http_too(stream):
    answer = client_of(stream).post("/events", json={"events": [event(user=7)]})
    assert answer.status_code == 422 and stream.state("7").events == 0


# ---------------------------------------------------------------- unreachable store
def closed_port_url():
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


@contextlib.contextmanager
def silent_server(lifetime=20.0):
    """A loopback server that accepts connections and never answers; it stops by itself after
    ``lifetime`` seconds at the latest."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    done, held = threading.Event(), []
    deadline = time.monotonic() + lifetime

    def hold():
        while not done.is_set() and time.monotonic() < deadline:
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass
        for connection in held:
            connection.close()
        listener.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        done.set()
        thread.join()


@pytest.fixture(params=["refuses", "never answers"])
def unreachable_redis(request):
    pytest.importorskip("redis")
    if request.param == "refuses":
        yield closed_port_url()
    else:
        with silent_server() as url:
            yield url


def test_an_unreachable_redis_raises_store_unavailable_within_the_timeouts(unreachable_redis):
    from recbole_hiertcn.serving.redis_store import RedisStateStore

    store = RedisStateStore(unreachable_redis, connect_timeout=0.2, read_timeout=0.2)
    stream = StreamingHierTCN(served_model(), store=store)
    for call in (lambda: store.get("v", "u1"), lambda: stream.observe("u1", "i3", 1e6),
                 lambda: store.seed("v", {"u1": stream.empty_state()}), lambda: len(store)):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="Redis unavailable"):
            call()
        assert time.monotonic() - started < 2.0  # two tries of 0.2 s, not forever


def test_an_unreachable_redis_is_a_503_to_retry(unreachable_redis):
    from recbole_hiertcn.serving.redis_store import RedisStateStore

    store = RedisStateStore(unreachable_redis, connect_timeout=0.2, read_timeout=0.2)
    client = client_of(StreamingHierTCN(served_model(), store=store))
    for answer in (client.post("/events", json={"events": [event()]}),
                   client.get("/users/u1"), client.get("/users/u1/recommendations")):
        assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
        assert assert_one_short_line(answer) == "state store unavailable; retry"
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("options", [dict(connect_timeout=0), dict(read_timeout=-1.0),
                                     dict(read_timeout=True)])
def test_redis_timeouts_must_be_positive(options):
    from recbole_hiertcn.serving.redis_store import RedisStateStore

    with pytest.raises(ValueError, match="must be a positive number of seconds"):
        RedisStateStore(client=object(), **options)


# ---------------------------------------------------------------- bearer token
def test_a_token_guards_every_endpoint_but_health(stream):
    client = client_of(stream, token=TOKEN)
    assert client.get("/health").status_code == 200
    requests = [("post", "/events", {"json": {"events": [event()]}}), ("get", "/users/u1", {}),
                ("get", "/users/u1/recommendations", {}), ("get", "/docs", {}),
                ("get", "/openapi.json", {}), ("get", "/no-such-path", {})]
    for method, path, options in requests:
        for header in (None, "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
                       f"Basic {TOKEN}", TOKEN):
            headers = {} if header is None else {"Authorization": header}
            answer = getattr(client, method)(path, headers=headers, **options)
            assert answer.status_code == 401, (path, header)
            assert answer.headers["www-authenticate"] == "Bearer"
    assert stream.state("u1").events == 0
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/events", json={"events": [event()]}, headers=good).status_code == 200
    assert client.get("/users/u1", headers={"Authorization": f"bearer {TOKEN}"}).json()[
        "events"] == 1
    assert client.get("/openapi.json", headers=good).status_code == 200


def test_the_token_is_checked_before_the_body_is_read(stream):
    client = client_of(stream, token=TOKEN, max_body_bytes=100)
    answer = client.post("/events", content=b"x" * 1000, headers=JSON)
    assert answer.status_code == 401


def test_the_token_is_compared_in_constant_time(stream, monkeypatch):
    compared = []
    real = service.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(service.hmac, "compare_digest", spy)
    client = client_of(stream, token=TOKEN)
    assert client.get("/users/u1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert compared == [(b"nope", TOKEN.encode())]


@pytest.mark.parametrize("token", ["", "two words", "tab\there", "naïve", 12345])
def test_a_token_a_header_cannot_carry_is_refused(token):
    with pytest.raises(ValueError, match="token"):
        check_token(token)


# ---------------------------------------------------------------- API pages
def test_the_api_pages_can_be_switched_off(stream):
    on, off = client_of(stream), client_of(stream, docs=False)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert on.get(path).status_code == 200
        assert off.get(path).status_code == 404
    assert off.get("/health").status_code == 200


@pytest.mark.parametrize("options", [dict(max_body_bytes=0), dict(max_events=-1),
                                     dict(max_body_bytes=True)])
def test_limits_must_be_positive_integers(stream, options):
    with pytest.raises(ValueError, match="positive integer"):
        create_app(stream, **options)


# ---------------------------------------------------------------- serve's options
@pytest.fixture(scope="module")
def folder(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("served") / "model"
    write_artifact(model.core, model.item_tokens, model.user_tokens, model.session_rule,
                   str(path), dataset_name="tiny")
    return str(path)


def test_serve_bounds_the_memory_store_and_expires_it_with_ttl(folder):
    from recbole_hiertcn.serving.__main__ import build_stream

    stream = build_stream(folder, ttl=60, max_users=2, max_id_length=16)
    assert (stream.store.max_users, stream.store.ttl, stream.max_id_length) == (2, 60, 16)
    assert build_stream(folder).store.max_users is None  # unbounded unless asked
    with pytest.raises(ValueError, match="max_users bounds the in-memory store"):
        build_stream(folder, redis_url="redis://127.0.0.1:1/0", max_users=2)


def test_serve_reads_the_token_from_a_file_or_the_environment_never_argv(tmp_path,
                                                                          monkeypatch):
    from recbole_hiertcn.serving.__main__ import TOKEN_ENV, _serve_token

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert _serve_token(None) is None
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert _serve_token(str(token_file)) == TOKEN
    token_file.write_text("\n")
    with pytest.raises(SystemExit, match="token"):
        _serve_token(str(token_file))
    with pytest.raises(SystemExit, match="cannot read --token-file"):
        _serve_token(str(tmp_path / "missing"))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert _serve_token(None) == TOKEN
    with pytest.raises(SystemExit, match="both"):
        _serve_token(str(token_file))
    monkeypatch.setenv(TOKEN_ENV, "")  # set but empty: an error, not "no token"
    with pytest.raises(SystemExit, match=TOKEN_ENV):
        _serve_token(None)


def test_serve_refuses_max_users_with_redis(folder):
    from recbole_hiertcn.serving.__main__ import main

    with pytest.raises(SystemExit, match="--max-users"):
        main(["serve", folder, "--redis", "redis://127.0.0.1:1/0", "--max-users", "5"])


def test_numeric_item_tokens_may_be_given_as_ints(model):
    numeric = ServedModel(model.core, "numeric", "time_gap",
                          ["[PAD]"] + [str(n) for n in range(1, len(model.item_tokens))],
                          model.user_tokens)
    by_int, by_str = StreamingHierTCN(numeric), StreamingHierTCN(numeric)
    by_int.observe("u1", 7, 1_000_000.0)
    by_str.observe("u1", "7", 1_000_000.0)
    assert by_int.state("u1").to_bytes() == by_str.state("u1").to_bytes()


def test_the_memory_store_is_unbounded_by_default():
    store = MemoryStateStore()
    assert store.max_users is None and store.ttl is None
