"""The HTTP face of a served HierTCN (FastAPI).

* ``GET /health``: model version, dataset, items, store and retrieval in use;
* ``POST /events``: ``{"events": [{"user", "item", "time", "session"?}, ...]}``, applied in
  order (all or nothing); answers how many were applied;
* ``GET /users/{user}``: what the state holds in short (events, events of the running session,
  last time and session id);
* ``GET /users/{user}/recommendations?k=10&time=...&session=...&exclude_seen=false``: the top
  items for the user's next event, best first, with their scores.

Errors are answered, never raised into the server: a malformed body or parameter is 422 (with
FastAPI's description of the field), an unknown item 404, an event older than the user's last
409, any other bad value 400; a user state that stays contended in Redis 503, a stored state
of another shape 500 (both with the reason). An unknown user starts empty.
"""

from typing import List, Optional, Union

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictFloat, StrictInt

from recbole_hiertcn.serving.redis_store import StoreContention
from recbole_hiertcn.serving.state import StateFormatError
from recbole_hiertcn.serving.stream import BadEvent, Event, OutOfOrderEvent, UnknownItem

MAX_EVENTS_PER_REQUEST = 10_000


class EventIn(BaseModel):
    user: str = Field(min_length=1)
    item: str = Field(min_length=1)
    time: Union[StrictInt, StrictFloat]  # a JSON number; no strings or booleans
    session: Optional[str] = None


class EventsIn(BaseModel):
    events: List[EventIn] = Field(max_length=MAX_EVENTS_PER_REQUEST)


def _status(error):
    if isinstance(error, UnknownItem):
        return 404
    if isinstance(error, OutOfOrderEvent):
        return 409
    return 400


def create_app(stream):
    """The FastAPI application around a
    :class:`~recbole_hiertcn.serving.stream.StreamingHierTCN`."""
    app = FastAPI(title="recbole-hiertcn", version=stream.model.version)

    @app.exception_handler(BadEvent)
    def bad_event(_request, error):
        return JSONResponse(status_code=_status(error), content={"detail": str(error)})

    @app.exception_handler(StoreContention)
    def contended(_request, error):
        return JSONResponse(status_code=503, content={"detail": f"{error}; retry"})

    @app.exception_handler(StateFormatError)
    def foreign_state(_request, error):
        return JSONResponse(status_code=500, content={"detail": str(error)})

    @app.get("/health")
    def health():
        return {"status": "ok", "model_version": stream.model.version,
                "dataset": stream.model.dataset, "items": stream.model.core.n_items - 1,
                "session_rule": stream.model.session_rule,
                "store": type(stream.store).__name__, "retrieval": stream.retrieval.name}

    @app.post("/events")
    def post_events(body: EventsIn):
        stream.observe_many([Event(e.user, e.item, e.time, e.session) for e in body.events])
        return {"applied": len(body.events)}

    @app.get("/users/{user}")
    def user_state(user: str):
        state = stream.state(user)
        return {"user": user, "events": state.events, "session_events": state.session_count,
                "last_time": state.last_time if state.events else None,
                "last_session": state.last_session}

    @app.get("/users/{user}/recommendations")
    def recommendations(user: str, k: int = Query(10, ge=1, le=1000),
                        time: Optional[float] = None, session: Optional[str] = None,
                        exclude_seen: bool = False):
        items = stream.recommend(user, k=k, time=time, session=session,
                                 exclude_seen=exclude_seen)
        return {"user": user, "model_version": stream.model.version,
                "items": [{"item": item, "score": score} for item, score in items]}

    return app
