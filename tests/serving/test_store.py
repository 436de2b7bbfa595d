"""State stores: the in-memory default and Redis (a real ``redis-server`` started here). No
update is lost when requests for one user race; states are kept per model version."""

import threading
import time

import numpy as np
import pytest

from recbole_hiertcn.serving import MemoryStateStore, StreamingHierTCN, UserState
from recbole_hiertcn.serving.state import StateFormatError
from tests.serving.helpers import history, served_model

@pytest.fixture(params=["memory", "redis"])
def store_kind(request):
    return request.param


@pytest.fixture
def new_store(store_kind, request):
    """A factory of stores of the parametrised kind sharing one backend (one Redis prefix)."""
    prefix = f"t{time.monotonic_ns()}"
    shared = {}

    def factory():
        if store_kind == "memory":
            shared.setdefault("store", MemoryStateStore())
            return shared["store"]
        url = request.getfixturevalue("redis_url")
        from recbole_hiertcn.serving.redis_store import RedisStateStore

        return RedisStateStore(url, prefix=prefix)

    return factory


def test_state_bytes_round_trip_and_refuse_other_shapes():
    stream = StreamingHierTCN(served_model(session_rule="session_id"))
    for n, item in enumerate([3, 4, 5]):
        stream.observe("u1", f"i{item}", 1_000_000.0 + n, "s-é")
    state = stream.state("u1")
    again = UserState.from_bytes(state.to_bytes(), stream._shape)
    assert again.to_bytes() == state.to_bytes() and again.last_session == "s-é"
    np.testing.assert_array_equal(again.long_term, state.long_term)
    with pytest.raises(StateFormatError, match="shape"):
        UserState.from_bytes(state.to_bytes(), (1, 2, 3, 4))
    with pytest.raises(StateFormatError):
        UserState.from_bytes(state.to_bytes()[:-3])
    with pytest.raises(StateFormatError):
        UserState.from_bytes(b"x" * 100)


def test_streaming_through_the_store_equals_streaming_in_memory(new_store):
    model = served_model(gap_decay=50_000.0)
    reference, stored = StreamingHierTCN(model), StreamingHierTCN(model, store=new_store())
    items, times, _ = history(40, seed=2)
    events = [("u1", model.item_tokens[i], float(t)) for i, t in zip(items, times)]
    for start in range(0, len(events), 7):
        reference.observe_many(events[start:start + 7])
        stored.observe_many(events[start:start + 7])
    assert stored.state("u1").to_bytes() == reference.state("u1").to_bytes()
    assert stored.recommend("u1", k=5) == reference.recommend("u1", k=5)


def test_states_are_kept_per_model_version(new_store):
    store = new_store()
    first = StreamingHierTCN(served_model(seed=0), store=store)
    second = StreamingHierTCN(served_model(seed=1), store=store)
    first.observe("u1", "i3", 1_000_000.0)
    assert first.state("u1").events == 1
    assert second.state("u1").events == 0  # another model starts the user empty


def test_racing_updates_of_one_user_lose_nothing(new_store):
    """Four workers (own stream objects, one shared store) send events of one user at the same
    time stamp (one session): every event counts, and the session sum is every item's."""
    model = served_model()
    workers = [StreamingHierTCN(model, store=new_store()) for _ in range(4)]
    per_worker, errors = 40, []

    def send(stream, offset):
        try:
            for n in range(per_worker):
                stream.observe("racer", f"i{1 + (offset + n) % 39}", 1_000_000.0)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=send, args=(w, 7 * n)) for n, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    state = workers[0].state("racer")
    assert state.events == state.session_count == 4 * per_worker
    table = workers[0]._table
    expected = sum(table[1 + (7 * w + n) % 39] for w in range(4) for n in range(per_worker))
    np.testing.assert_allclose(state.session_sum, expected, rtol=1e-5, atol=1e-5)


def test_a_refused_batch_leaves_the_stored_state_as_it_was(new_store):
    stream = StreamingHierTCN(served_model(), store=new_store())
    stream.observe("u1", "i3", 1_000_000.0)
    before = stream.state("u1").to_bytes()
    with pytest.raises(ValueError):
        stream.observe_many([("u1", "i4", 1_000_010.0), ("u1", "nope", 1_000_020.0)])
    assert stream.state("u1").to_bytes() == before


@pytest.mark.parametrize("ttl", [0, -5, 1.5, True])
def test_a_ttl_that_redis_would_refuse_is_refused_up_front(ttl):
    from recbole_hiertcn.serving.redis_store import RedisStateStore

    with pytest.raises(ValueError, match="ttl must be a positive number of seconds"):
        RedisStateStore(client=object(), ttl=ttl)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_bounded_memory_store_drops_the_least_recently_updated_users():
    store = MemoryStateStore(max_users=2)
    stream = StreamingHierTCN(served_model(), store=store)
    stream.observe("a", "i3", 1e6)
    stream.observe("b", "i3", 1e6)
    stream.observe("a", "i4", 1e6 + 1)  # a is now the more recently updated
    stream.recommend("b")  # a read does not count
    stream.observe("c", "i3", 1e6)
    assert len(store._states) == 2  # dropped from memory, not only hidden from reads
    assert stream.state("b").events == 0  # dropped: starts fresh
    assert stream.state("a").events == 2 and stream.state("c").events == 1
    stream.observe("b", "i5", 10.0)  # a fresh history: an older time is no conflict
    assert stream.state("b").events == 1 and len(store) == 2


def test_a_memory_store_with_a_ttl_expires_idle_users():
    clock = Clock()
    store = MemoryStateStore(ttl=60, clock=clock)
    stream = StreamingHierTCN(served_model(), store=store)
    stream.observe("idle", "i3", 1e6)
    stream.observe("busy", "i3", 1e6)
    clock.now = 59.0
    stream.observe("busy", "i4", 1e6 + 1)  # an event restarts the ttl
    assert stream.state("idle").events == 1
    clock.now = 60.0
    stream.observe("new", "i3", 1e6)
    # an update drops the expired from memory, even users never read again
    assert {user for _, user in store._states} == {"busy", "new"}
    clock.now = 60.5
    assert stream.state("idle").events == 0 and stream.state("busy").events == 2
    assert len(store) == 2 and set(store.states(stream.model.version)) == {"busy", "new"}
    clock.now = 118.5  # 59.5 s after busy's last event
    assert stream.state("busy").events == 2
    assert store.seed(stream.model.version, {"idle": stream.empty_state()}) == 1
    clock.now = 200.0
    assert len(store) == 0


@pytest.mark.parametrize("options", [dict(max_users=0), dict(max_users=2.5),
                                     dict(max_users=True), dict(ttl=0), dict(ttl=-1),
                                     dict(ttl=float("inf")), dict(ttl=True)])
def test_memory_store_bounds_must_be_positive(options):
    with pytest.raises(ValueError, match="must be a positive"):
        MemoryStateStore(**options)


def test_a_redis_exec_without_answer_is_unavailable_not_applied_twice(redis_url):
    """Redis holds the EXEC past the read timeout (CLIENT PAUSE WRITE): the store reports it
    unavailable instead of computing the update again on states the EXEC may have written."""
    import redis

    from recbole_hiertcn.serving.redis_store import RedisStateStore
    from recbole_hiertcn.serving.store import StoreUnavailable

    prefix = f"pause{time.monotonic_ns()}"
    stream = StreamingHierTCN(served_model(), store=RedisStateStore(
        redis_url, prefix=prefix, read_timeout=0.3))
    stream.observe("u1", "i3", 1_000_000.0)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        stream.observe("u1", "i4", 1_000_001.0)
    assert time.monotonic() - started < 0.9  # gave up before the pause ended
    admin.execute_command("CLIENT", "UNPAUSE")
    admin.close()
    assert stream.state("u1").events in (1, 2)  # the lost EXEC applied at most once


def test_a_redis_connection_lost_during_exec_is_unavailable_not_applied_twice(redis_url):
    """The connection drops while Redis holds the EXEC (CLIENT PAUSE WRITE, then CLIENT KILL):
    redis-py reports it as a WatchError, but it was no race - computing the update again
    could apply the event twice, so the store reports it unavailable."""
    import redis

    from recbole_hiertcn.serving.redis_store import RedisStateStore
    from recbole_hiertcn.serving.store import StoreUnavailable

    name = f"victim{time.monotonic_ns()}"
    client = redis.Redis.from_url(redis_url, client_name=name, socket_timeout=5)
    stream = StreamingHierTCN(served_model(), store=RedisStateStore(client=client, prefix=name))
    stream.observe("u1", "i3", 1_000_000.0)
    admin = redis.Redis.from_url(redis_url)
    outcome = []

    def observe():
        try:
            stream.observe("u1", "i4", 1_000_001.0)
            outcome.append("applied")
        except StoreUnavailable:
            outcome.append("unavailable")

    admin.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    try:
        worker = threading.Thread(target=observe)
        worker.start()
        time.sleep(0.3)  # the EXEC is waiting on the pause
        for connection in admin.client_list():
            if connection["name"] == name:
                admin.client_kill_filter(_id=connection["id"])
        worker.join(timeout=10)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    admin.close()
    assert outcome == ["unavailable"]
    assert stream.state("u1").events in (1, 2)  # the lost EXEC applied at most once
