"""Several processes, one run: RecBole's DDP with a backend that also works on the CPU.

RecBole 1.2.1 starts ``torch.distributed`` with ``nccl`` and CUDA devices whenever the config has
a ``local_rank`` (:func:`init_device` replaces that step; :mod:`recbole_hiertcn.compat` applies
it to RecBole's ``Config``), and its trainer wraps the model in ``DistributedDataParallel`` with
``device_ids=[local_rank]``, which a CPU model refuses (:func:`distributed_data_parallel`).

``backend`` (``properties/overall.yaml``): ``nccl`` or ``gloo``; ``~`` chooses ``nccl`` when CUDA
is there and ``gpu_id`` names a device, ``gloo`` otherwise. The rest of this module is what the
plugin's loaders and trainer use when ``single_spec`` is False.
"""

import torch
import torch.distributed as dist

BACKENDS = ("nccl", "gloo")


def active():
    """Whether this process is in a started process group."""
    return dist.is_available() and dist.is_initialized()


def _read(config, key):
    """``config[key]``, None when absent (a RecBole ``Config`` or its final dict)."""
    return config[key] if key in config else None


def _uses_cuda(config):
    """A GPU is named (``gpu_id``), wanted (``use_gpu`` is not False) and present."""
    return (_read(config, "use_gpu") is not False and bool(str(_read(config, "gpu_id") or ""))
            and torch.cuda.is_available())


def backend_for(config):
    """The process-group backend of ``config`` (a dict-like with RecBole's keys)."""
    chosen = _read(config, "backend")
    if chosen is None:
        return "nccl" if _uses_cuda(config) else "gloo"
    if chosen not in BACKENDS:
        raise ValueError(f"config key `backend` must be one of {', '.join(BACKENDS)} or ~, "
                         f"got {chosen!r}")
    if chosen == "nccl" and not torch.cuda.is_available():
        raise ValueError("config key `backend` is nccl, but CUDA is not available: use gloo "
                         "(or ~) to run on the CPU")
    return chosen


def init_device(final_config):
    """What ``Config._init_device`` does for a distributed run (``local_rank`` set), with the
    backend of :func:`backend_for`; ``final_config`` is the ``Config``'s final dict."""
    backend = backend_for(final_config)
    rank = final_config["local_rank"] + (final_config.get("offset") or 0)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=rank, world_size=final_config["world_size"],
            init_method=f"tcp://{final_config['ip']}:{final_config['port']}")
    if backend == "nccl":
        final_config["device"] = torch.device("cuda", final_config["local_rank"])
        torch.cuda.set_device(final_config["local_rank"])
    else:
        final_config["device"] = torch.device("cpu")
    final_config["backend"] = backend
    final_config["single_spec"] = False
    if final_config["local_rank"] != 0:
        final_config["state"] = "error"
        final_config["show_progress"] = False
        final_config["verbose"] = False


def distributed_data_parallel(module, device_ids=None, **options):
    """``DistributedDataParallel`` that leaves out ``device_ids`` for a module on the CPU (DDP
    requires it to be None there)."""
    first = next(module.parameters(), None)
    if first is not None and first.device.type == "cpu":
        device_ids = None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids, **options)


def as_one_process(config):
    """A config saved by a DDP run, read back by one process (no process group): the run's
    keys say one process, on this process's device."""
    if config["single_spec"] is False and not active():
        config["single_spec"] = True
        config["local_rank"] = 0
        config["device"] = torch.device("cuda" if _uses_cuda(config) else "cpu")
    return config


def is_distributed(config):
    return config["single_spec"] is False and active()


def rank():
    return dist.get_rank() if active() else 0


def world_size():
    return dist.get_world_size() if active() else 1


def barrier():
    if active():
        dist.barrier()


def end_process():
    """The end of one process of a multi-process run, once its results are handed on.

    Every rank waits for the others, then the process group is destroyed while the interpreter
    is still whole: the DDP wrappers and process-group handles that reference cycles keep alive
    are collected first, so none is left for interpreter shutdown, when freeing gloo's pending
    work can abort the process after a finished run. Callers drop their own references to the
    run (model, trainer) before calling.
    """
    import gc

    gc.collect()
    if active():
        dist.barrier()
        dist.destroy_process_group()


def report_crashes():
    """Print every thread's Python stack if this process dies of a signal (SIGABRT, SIGSEGV
    from native code): a rank of a multi-process run that aborts says where it was."""
    import faulthandler

    if not faulthandler.is_enabled():
        faulthandler.enable()


def broadcast_from_first(value):
    """``value`` as rank 0 has it, on every rank (any picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(tensor):
    """Every rank's ``tensor`` (same trailing shape, any number of rows) concatenated in rank
    order, on every rank, on the device ``tensor`` was on."""
    if not active():
        return tensor
    home = tensor.device
    if dist.get_backend() == "nccl":  # nccl takes CUDA tensors only
        tensor = tensor.cuda()
    sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device)
             for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([tensor.size(0)], device=tensor.device))
    sizes = [int(size) for size in sizes]
    padded = tensor.new_zeros((max(sizes),) + tensor.shape[1:])
    padded[:tensor.size(0)] = tensor
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(home)


def gather_objects(value):
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not active():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def split_balanced(sizes, parts):
    """Indices of ``sizes`` in ``parts`` groups of nearly equal sums (largest first, each to the
    lightest group); every group gets at least one index when ``len(sizes) >= parts``."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    groups, loads = [[] for _ in range(parts)], [0] * parts
    for index in order:
        lightest = min(range(parts), key=lambda g: (loads[g], len(groups[g]), g))
        groups[lightest].append(index)
        loads[lightest] += sizes[index]
    return [sorted(group) for group in groups]
