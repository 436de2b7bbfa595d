"""The HTTP face of a served HierTCN (FastAPI).

Endpoints:

* ``GET /health``: model version, dataset, items, store and retrieval in use (open even with
  a token: a load balancer's probe);
* ``POST /events``: ``{"events": [{"user", "item", "time", "session"?}, ...]}``, applied in
  order (all or nothing); answers how many were applied;
* ``GET /users/{user}``: what the state holds in short (events, events of the running session,
  last time and session id);
* ``GET /users/{user}/recommendations?k=10&time=...&session=...&exclude_seen=false``: the top
  items for the user's next event, best first, with their scores;
* ``GET /docs``, ``/redoc``, ``/openapi.json``: FastAPI's API pages, unless ``docs=False``.

Options of :func:`create_app` (the ``serve`` option in brackets):

* ``max_body_bytes`` (``--max-body-bytes``, default :data:`MAX_BODY_BYTES`): a longer request
  body is answered 413 without being parsed - at once when its ``Content-Length`` says so, else
  (chunked) as soon as the bytes read pass the limit: no more than the limit plus the server's
  last chunk is ever held;
* ``max_events`` (``--max-events``, default :data:`MAX_EVENTS_PER_REQUEST`): events of one
  ``POST /events``; more is 413;
* ``token`` (``--token-file PATH`` or the environment variable ``HIERTCN_SERVE_TOKEN``, never
  argv): every request but ``GET /health`` needs ``Authorization: Bearer <token>`` (compared
  in constant time), else 401;
* ``docs`` (``--no-docs``): the API pages on or off.

The stream bounds the values (``--max-id-length``): user and session ids are strings, ids and
item tokens at most ``max_id_length`` characters, times finite within +-2**53 s.

Errors are answered, never raised into the server, each with a one-line ``detail`` that never
echoes the input: a malformed body or parameter, a value of the wrong type, too long or out of
range 422 (``<where>: <why>``); an unknown item 404; an event older than the user's last 409;
another bad event (a session id missing) 400; a body or batch too large 413; no or a wrong
token 401; a state store that cannot be reached or stays contended 503 with ``Retry-After``; a
stored state of another shape 500. An unknown user starts empty.
"""

import hmac
import logging
from typing import List, Optional, Union

from fastapi import FastAPI, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictFloat, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from recbole_hiertcn.serving.redis_store import StoreContention
from recbole_hiertcn.serving.state import StateFormatError
from recbole_hiertcn.serving.store import StoreUnavailable
from recbole_hiertcn.serving.stream import (
    BadEvent,
    Event,
    InvalidValue,
    OutOfOrderEvent,
    UnknownItem,
)

MAX_BODY_BYTES = 1_000_000
MAX_EVENTS_PER_REQUEST = 10_000
# Seconds a client is asked to wait: a store that is down, or a user's state in a race.
RETRY_AFTER_UNAVAILABLE = 5
RETRY_AFTER_CONTENDED = 1
OPEN_PATHS = frozenset({"/health"})

log = logging.getLogger(__name__)


class EventIn(BaseModel):
    user: str = Field(min_length=1)
    item: str = Field(min_length=1)
    time: Union[StrictInt, StrictFloat]  # a JSON number; no strings or booleans
    session: Optional[str] = None


class EventsIn(BaseModel):
    events: List[EventIn]


def _status(error):
    if isinstance(error, UnknownItem):
        return 404
    if isinstance(error, OutOfOrderEvent):
        return 409
    if isinstance(error, InvalidValue):
        return 422
    return 400


def _one_line(text, limit=200):
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def validation_reason(errors):
    """FastAPI's validation errors -> ``"<where>: <why>"`` of the first one; pydantic's
    messages name what was expected, never the input, which is left out."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(_one_line(part, 40) for part in first.get("loc", ()))
    reason = f"{where}: {_one_line(first.get('msg', 'invalid value'))}"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    return reason


def _header(scope, name):
    """Values of the request header ``name`` (lower-case bytes)."""
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


async def _reply(scope, receive, send, status, detail, headers=None):
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(
        scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``: FastAPI passes an HTTPException met while reading a body on to
    its handler (another exception would become a 400)."""

    def __init__(self, limit):
        super().__init__(413, f"request body larger than {limit} bytes")


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, never parsed."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for declared in _header(scope, b"content-length"):
            if not declared.strip().isdigit():
                return await _reply(scope, receive, send, 400, "invalid Content-Length")
            # a long digit string is over any limit (and int() refuses 4300+ digits)
            if len(declared.strip()) > 18 or int(declared) > self.max_bytes:
                return await _reply(scope, receive, send, 413,
                                    f"request body larger than {self.max_bytes} bytes")
        received, started = 0, False

        async def counted_receive():  # a chunked body: stop reading once past the limit
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge as error:  # read outside FastAPI's handlers
            if started:
                raise
            await _reply(scope, receive, send, 413, error.detail)


class BearerToken:
    """ASGI middleware: every HTTP request but to ``open_paths`` needs
    ``Authorization: Bearer <token>``, compared in constant time; 401 otherwise."""

    def __init__(self, app, token, open_paths=OPEN_PATHS):
        self.app, self._token, self.open_paths = app, token.encode("ascii"), open_paths

    def _authorised(self, scope):
        for value in _header(scope, b"authorization"):
            scheme, _, presented = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(),
                                                                   self._token):
                return True
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in self.open_paths and (
                not self._authorised(scope)):
            return await _reply(scope, receive, send, 401, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        await self.app(scope, receive, send)


def check_token(token):
    """A token a header can carry: visible ASCII, no spaces, not empty."""
    if not isinstance(token, str) or not token or not token.isascii() or not all(
            character.isprintable() and not character.isspace() for character in token):
        raise ValueError("the token must be a non-empty string of visible ASCII characters "
                         "without spaces")
    return token


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def create_app(stream, *, max_body_bytes=MAX_BODY_BYTES, max_events=MAX_EVENTS_PER_REQUEST,
               token=None, docs=True):
    """The FastAPI application around a
    :class:`~recbole_hiertcn.serving.stream.StreamingHierTCN` (options: the module's
    docstring)."""
    _positive_int("max_body_bytes", max_body_bytes)
    _positive_int("max_events", max_events)
    pages = {} if docs else dict(docs_url=None, redoc_url=None, openapi_url=None)
    app = FastAPI(title="recbole-hiertcn", version=stream.model.version, **pages)
    # the last added runs first: a request without the token is refused before its body is read
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    if token is not None:
        app.add_middleware(BearerToken, token=check_token(token))

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request, error):
        return JSONResponse(status_code=422, content={"detail": validation_reason(error.errors())})

    @app.exception_handler(BadEvent)
    def bad_event(_request, error):
        return JSONResponse(status_code=_status(error),
                            content={"detail": _one_line(error, limit=1000)})

    @app.exception_handler(StoreUnavailable)
    def unavailable(_request, error):
        log.warning("state store unavailable: %s", error)  # the reason stays in the log
        return JSONResponse(status_code=503, content={"detail": "state store unavailable; retry"},
                            headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})

    @app.exception_handler(StoreContention)
    def contended(_request, error):
        return JSONResponse(status_code=503, content={"detail": f"{error}; retry"},
                            headers={"Retry-After": str(RETRY_AFTER_CONTENDED)})

    @app.exception_handler(StateFormatError)
    def foreign_state(_request, error):
        return JSONResponse(status_code=500, content={"detail": _one_line(error)})

    @app.get("/health")
    def health():
        return {"status": "ok", "model_version": stream.model.version,
                "dataset": stream.model.dataset, "items": stream.model.core.n_items - 1,
                "session_rule": stream.model.session_rule,
                "store": type(stream.store).__name__, "retrieval": stream.retrieval.name}

    @app.post("/events")
    def post_events(body: EventsIn):
        if len(body.events) > max_events:
            raise HTTPException(413, f"{len(body.events)} events; at most {max_events} a "
                                     f"request")
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
