"""``python -m recbole_hiertcn.serving export|serve`` (also ``recbole-hiertcn export|serve``).

    python -m recbole_hiertcn.serving export saved/HierTCN-....pth --output served/hiertcn [--with-states]
    python -m recbole_hiertcn.serving serve served/hiertcn --port 8000 [--redis URL] [--faiss]
        [--token-file PATH] [--no-docs] [--max-body-bytes N] [--max-users N] [--ttl S] ...
"""

import argparse
import os
import sys

# The bearer token of `serve` when no --token-file is given (never a command-line argument:
# other users of the machine can read argv).
TOKEN_ENV = "HIERTCN_SERVE_TOKEN"


def _load_data_and_model(checkpoint_file):
    """quick_start's, imported only when an export needs the dataset (``--with-states``, older
    checkpoints): a plain export imports no RecBole."""
    from recbole_hiertcn.quick_start import load_data_and_model

    return load_data_and_model(checkpoint_file)


def _export(args):
    from recbole_hiertcn.serving.artifact import read_key_file
    from recbole_hiertcn.serving.export import export_checkpoint

    key = read_key_file(args.sign_key_file) if args.sign_key_file else None
    version = export_checkpoint(args.checkpoint, args.output, with_states=args.with_states,
                                signing_key=key, load_data_and_model=_load_data_and_model)
    print(f"exported {args.checkpoint} -> {args.output} (model version {version}"
          f"{', with every user state' if args.with_states else ''})")
    return 0


def build_stream(folder, redis_url=None, faiss_index=None, ttl=None, max_users=None,
                 max_id_length=None, redis_timeout=None):
    """The :class:`StreamingHierTCN` a ``serve`` command runs. ``ttl`` (seconds) expires idle
    users in memory or Redis; ``max_users`` bounds the memory store; ``redis_timeout``
    (seconds, connect and read); None: the defaults of the store and the stream."""
    from recbole_hiertcn.serving.artifact import load_artifact
    from recbole_hiertcn.serving.retrieval import FaissRetrieval
    from recbole_hiertcn.serving.store import MemoryStateStore
    from recbole_hiertcn.serving.stream import StreamingHierTCN

    model = load_artifact(folder)
    if redis_url:
        from recbole_hiertcn.serving.redis_store import RedisStateStore

        if max_users is not None:
            raise ValueError("max_users bounds the in-memory store; bound Redis with its "
                             "maxmemory policy and ttl")
        timeouts = ({} if redis_timeout is None else
                    dict(connect_timeout=redis_timeout, read_timeout=redis_timeout))
        store = RedisStateStore(redis_url, ttl=ttl, **timeouts)
    else:
        store = MemoryStateStore(max_users=max_users, ttl=ttl)
    retrieval = FaissRetrieval(model, index=faiss_index) if faiss_index else None
    limits = {} if max_id_length is None else dict(max_id_length=max_id_length)
    stream = StreamingHierTCN(model, store=store, retrieval=retrieval, **limits)
    stream.load_exported_states()  # users the store holds no state of yet
    return stream


def _serve_token(path):
    """The bearer token from ``--token-file`` or ``$HIERTCN_SERVE_TOKEN`` (None: neither)."""
    from recbole_hiertcn.serving.service import check_token

    if path is not None and TOKEN_ENV in os.environ:
        raise SystemExit(f"serve: both --token-file and {TOKEN_ENV} are given; keep one")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                token, source = handle.read().strip(), path
        except (OSError, UnicodeDecodeError) as error:
            raise SystemExit(f"serve: cannot read --token-file: {error}") from None
    elif TOKEN_ENV in os.environ:  # set but empty is an error, not "no token"
        token, source = os.environ[TOKEN_ENV].strip(), TOKEN_ENV
    else:
        return None
    try:
        return check_token(token)
    except ValueError as error:
        raise SystemExit(f"serve: {source}: {error}") from None


def _serve(args):
    import torch
    import uvicorn

    from recbole_hiertcn.serving.service import create_app

    if args.redis and args.max_users is not None:
        raise SystemExit("serve: --max-users bounds the in-memory store; bound Redis with its "
                         "maxmemory policy and --ttl")
    token = _serve_token(args.token_file)
    torch.set_num_threads(args.threads)
    stream = build_stream(args.folder, args.redis, args.faiss, args.ttl,
                          max_users=args.max_users, max_id_length=args.max_id_length,
                          redis_timeout=args.redis_timeout)
    limits = {name: getattr(args, name) for name in ("max_body_bytes", "max_events")
              if getattr(args, name) is not None}
    app = create_app(stream, token=token, docs=not args.no_docs, **limits)
    print(f"serving model {stream.model.version} ({stream.model.core.n_items - 1} items, "
          f"{type(stream.store).__name__}, {stream.retrieval.name} retrieval"
          f"{', bearer token required' if token else ''}) on "
          f"http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _count(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seconds(text):
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="recbole-hiertcn",
                                     description="Export and serve a trained HierTCN.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="checkpoint -> self-contained folder")
    export.add_argument("checkpoint", help="a HierTCN checkpoint saved by a run (saved/*.pth)")
    export.add_argument("--output", "-o", required=True, help="new folder to write")
    export.add_argument("--with-states", action="store_true",
                        help="also replay every user's history into their serving state")
    export.add_argument("--sign-key-file", metavar="PATH", default=None,
                        help="sign the export with the key in this file (HMAC-SHA256 of "
                             "model.json, written to model.json.sig)")
    export.set_defaults(handler=_export)
    serve = commands.add_parser("serve", help="HTTP service of an exported folder")
    serve.add_argument("folder", help="a folder written by `export`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--redis", default=None, metavar="URL",
                       help="keep user states in Redis (redis://host:port/db); default: memory")
    serve.add_argument("--ttl", type=_positive_int, default=None,
                       help="seconds after which an idle user's state expires (memory or "
                            "Redis); the user then starts fresh")
    serve.add_argument("--max-users", type=_count, default=None, metavar="N",
                       help="keep at most N user states in memory, dropping the least "
                            "recently updated (they start fresh); default: no bound")
    serve.add_argument("--redis-timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="seconds to connect to and to wait for Redis before answering "
                            "503 (default 2)")
    serve.add_argument("--max-body-bytes", type=_count, default=None, metavar="N",
                       help="answer 413 to a request body over N bytes (default 1000000)")
    serve.add_argument("--max-events", type=_count, default=None, metavar="N",
                       help="answer 413 to more than N events in a request (default 10000)")
    serve.add_argument("--max-id-length", type=_count, default=None, metavar="N",
                       help="refuse user ids, session ids and item tokens over N characters "
                            "(default 256)")
    serve.add_argument("--token-file", default=None, metavar="PATH",
                       help=f"require `Authorization: Bearer <token>` (but on /health), the "
                            f"token read from this file; else from ${TOKEN_ENV} if set")
    serve.add_argument("--no-docs", action="store_true",
                       help="no /docs, /redoc and /openapi.json")
    serve.add_argument("--faiss", nargs="?", const="HNSW32", default=None, metavar="INDEX",
                       help="retrieve with a FAISS index (factory string, default HNSW32) "
                            "instead of exact top-k")
    serve.add_argument("--threads", type=int, default=1, help="torch threads")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(handler=_serve)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
