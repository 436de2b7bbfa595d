"""What each process of the two-process (gloo) tests runs; importable by spawned processes."""

import torch

from recbole_hiertcn.data.dataset.session_dataset import SEQ_TARGET_MASK
from tests.conftest import small_config

DATASET = "tiny_sess"


def config_dict(data_root, local_rank=None, world=1, port=None, **overrides):
    values = small_config(data_root, DATASET, True, **overrides)
    if local_rank is not None:
        values.update(world_size=world, nproc=world, ip="127.0.0.1", port=port, offset=0,
                      local_rank=local_rank)
    return values


class CountingLoader:
    """The training loader, counting the targets of the batches it gives."""

    def __init__(self, loader):
        self.loader, self.targets = loader, 0

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.targets += int(batch[SEQ_TARGET_MASK].sum())
            yield batch


def train_epochs(prepared, epochs):
    """Per epoch: this process's loss sum and the count of training targets it trained on."""
    history = []
    for epoch in range(epochs):
        counting = CountingLoader(prepared.train_data)
        loss = prepared.trainer._train_epoch(counting, epoch)
        history.append((float(loss), counting.targets))
    return history


def run_task(local_rank, task, data_root, world, port, overrides, state_file):
    """Spawned: build the run on this rank, do ``task``, save its result next to
    ``state_file`` as ``result-<rank>.pt``."""
    import os
    import weakref

    from recbole_hiertcn import distributed
    from recbole_hiertcn.quick_start import prepare_run

    distributed.report_crashes()
    os.chdir(os.path.dirname(str(state_file)))
    overrides = dict(overrides)
    model = overrides.pop("model", "HierTCN")
    prepared = prepare_run(model, DATASET, config_dict=config_dict(
        data_root, local_rank, world, port, **overrides))
    if task == "train":
        result = {"history": train_epochs(prepared, 2),
                  "state": {k: v.detach().clone() for k, v in prepared.model.state_dict().items()}}
    elif task == "evaluate":
        prepared.model.load_state_dict(torch.load(state_file, weights_only=True))
        result = {"test": dict(prepared.trainer.evaluate(prepared.test_data,
                                                         load_best_model=False))}
    else:  # "fit": the whole run with its checkpoint
        best_score, _ = prepared.trainer.fit(prepared.train_data, prepared.valid_data)
        test = prepared.trainer.evaluate(prepared.test_data)
        result = {"test": dict(test), "model_file": prepared.trainer.saved_model_file}
    torch.save(result, os.path.join(os.path.dirname(str(state_file)), f"result-{local_rank}.pt"))
    trained = weakref.ref(prepared.model)
    del prepared, result
    distributed.end_process()
    # what the run held must be gone before the interpreter shuts down (see end_process)
    with open(os.path.join(os.path.dirname(str(state_file)), f"ended-{local_rank}.txt"), "w") as f:
        f.write("model freed" if trained() is None else "model alive")
