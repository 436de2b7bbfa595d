"""``python -m recbole_hiertcn.serving export|serve`` (also ``recbole-hiertcn export|serve``).

    python -m recbole_hiertcn.serving export saved/HierTCN-....pth --output served/hiertcn [--with-states]
    python -m recbole_hiertcn.serving serve served/hiertcn --port 8000 [--redis URL] [--faiss]
"""

import argparse
import sys


def _export(args):
    from recbole_hiertcn.serving.export import export_checkpoint

    version = export_checkpoint(args.checkpoint, args.output, with_states=args.with_states)
    print(f"exported {args.checkpoint} -> {args.output} (model version {version}"
          f"{', with every user state' if args.with_states else ''})")
    return 0


def build_stream(folder, redis_url=None, faiss_index=None, ttl=None):
    """The :class:`StreamingHierTCN` a ``serve`` command runs."""
    from recbole_hiertcn.serving.artifact import load_artifact
    from recbole_hiertcn.serving.retrieval import FaissRetrieval
    from recbole_hiertcn.serving.store import MemoryStateStore
    from recbole_hiertcn.serving.stream import StreamingHierTCN

    model = load_artifact(folder)
    if redis_url:
        from recbole_hiertcn.serving.redis_store import RedisStateStore

        store = RedisStateStore(redis_url, ttl=ttl)
    else:
        store = MemoryStateStore()
    retrieval = FaissRetrieval(model, index=faiss_index) if faiss_index else None
    stream = StreamingHierTCN(model, store=store, retrieval=retrieval)
    stream.load_exported_states()  # users the store holds no state of yet
    return stream


def _serve(args):
    import torch
    import uvicorn

    from recbole_hiertcn.serving.service import create_app

    torch.set_num_threads(args.threads)
    stream = build_stream(args.folder, args.redis, args.faiss, args.ttl)
    print(f"serving model {stream.model.version} ({stream.model.core.n_items - 1} items, "
          f"{type(stream.store).__name__}, {stream.retrieval.name} retrieval) on "
          f"http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(stream), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _positive_int(text):
    value = int(text)
    if value < 1:
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
    export.set_defaults(handler=_export)
    serve = commands.add_parser("serve", help="HTTP service of an exported folder")
    serve.add_argument("folder", help="a folder written by `export`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--redis", default=None, metavar="URL",
                       help="keep user states in Redis (redis://host:port/db); default: memory")
    serve.add_argument("--ttl", type=_positive_int, default=None,
                       help="seconds after which an idle user's state expires in Redis")
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
