"""Every random stream a training epoch draws from, as plain data a checkpoint can hold.

An epoch draws from Python's, numpy's and torch's global generators (dropout, RecBole's negative
sampler, weight noise) and from the training loader's own ``torch.Generator`` (its shuffle, the
sequence loader's batch plan and negatives). A run resumed from a checkpoint continues exactly
like the uninterrupted run only if all of them are put back. Everything is stored as tensors,
ints and tuples, so the checkpoint needs no extra global to load.
"""

import random

import numpy as np
import torch


def _loader_generator(loader):
    generator = getattr(loader, "generator", None) if loader is not None else None
    return generator if isinstance(generator, torch.Generator) else None


def capture(train_loader=None):
    """The state of every generator, including ``train_loader.generator`` when it has one."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                  float(cached_gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    generator = _loader_generator(train_loader)
    if generator is not None:
        state["train_loader"] = generator.get_state()
    return state


def restore(state, train_loader=None):
    """Put back what :func:`capture` saved; the loader's part only if the loader has one."""
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss,
                         cached_gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = _loader_generator(train_loader)
    if generator is not None and state.get("train_loader") is not None:
        generator.set_state(state["train_loader"])
