"""Several processes (two gloo processes on the CPU) give what one process gives: every target
trained once per epoch, the same loss trajectory and weights, evaluation equal to one
process's, one checkpoint for all ranks."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from recbole_hiertcn import distributed
from recbole_hiertcn.data.dataloader.sequence_dataloader import SequenceTrainDataLoader, _at_least
from recbole_hiertcn.quick_start import prepare_run
from tests.conftest import build_model, free_port
from tests.trainer import ddp_workers

WORLD = 2


def spawn(task, data_root, folder, overrides=None, state_file=None):
    """``{rank: result}`` of ``task`` run by two processes."""
    state_file = state_file or os.path.join(str(folder), "state.pt")
    mp.spawn(ddp_workers.run_task, nprocs=WORLD, join=True,
             args=(task, str(data_root), WORLD, free_port(), dict(overrides or {}), state_file))
    for rank in range(WORLD):  # each process freed its run before it ended
        with open(os.path.join(os.path.dirname(state_file), f"ended-{rank}.txt")) as ended:
            assert ended.read() == "model freed", rank
    return {rank: torch.load(os.path.join(str(folder), f"result-{rank}.pt"), weights_only=False)
            for rank in range(WORLD)}


# ----------------------------------------------------------------------------- the loader, alone
def test_ranks_share_every_epoch_exactly_with_equal_batch_counts(data_root):
    """Rank r of 2 takes its part of each global batch: all chunks once, none twice, the same
    number of batches on both ranks, weights that make each batch's ranks average to 1."""
    config, _, train, _ = build_model("HierTCN", data_root, "tiny_sess", train_batch_size=40)
    loaders = []
    for rank in range(WORLD):
        loader = SequenceTrainDataLoader(config, train._dataset)
        loader.rank, loader.world = rank, WORLD
        loaders.append(loader)
    for _ in range(3):  # epochs: the plans move on alike
        plans = [loader._rank_plan() for loader in loaders]
        assert len(plans[0]) == len(plans[1]) > 1
        chunks = torch.cat([c for plan in plans for c, _ in plan])
        assert sorted(chunks.tolist()) == list(range(len(loaders[0].targets)))
        for (a, weight_a), (b, weight_b) in zip(*plans):
            assert len(a) and len(b)
            assert weight_a + weight_b == pytest.approx(WORLD)
            targets = loaders[0].targets
            assert weight_a == pytest.approx(WORLD * targets[a].sum() / (targets[a].sum()
                                                                          + targets[b].sum()))


def test_a_global_batch_smaller_than_the_world_joins_its_neighbour():
    plan = [torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([3])]
    assert [p.tolist() for p in _at_least(plan, 2)] == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="fewer than the 3 processes"):
        _at_least([torch.tensor([0, 1])], 3)


def test_split_balanced_is_balanced_and_complete():
    groups = distributed.split_balanced([9, 1, 1, 1, 5, 4, 3], 2)
    assert sorted(i for g in groups for i in g) == list(range(7))
    sums = [sum([9, 1, 1, 1, 5, 4, 3][i] for i in g) for g in groups]
    assert abs(sums[0] - sums[1]) <= 1


def test_backend_is_gloo_on_the_cpu_and_checked():
    assert distributed.backend_for({"backend": None, "gpu_id": ""}) == "gloo"
    assert distributed.backend_for({"backend": "gloo", "gpu_id": "0"}) == "gloo"
    assert distributed.backend_for({"backend": None, "gpu_id": "0", "use_gpu": False}) == "gloo"
    with pytest.raises(ValueError, match="`backend` must be one of nccl, gloo"):
        distributed.backend_for({"backend": "mpi", "gpu_id": ""})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            distributed.backend_for({"backend": "nccl", "gpu_id": "0"})


# ----------------------------------------------------------------------------- two processes
def test_a_rank_that_aborts_prints_where_it_was():
    """A rank killed by native code (SIGABRT, as gloo does on a broken teardown) prints every
    thread's Python stack, so the failure says where it happened."""
    import subprocess
    import sys

    code = ("import os\nfrom recbole_hiertcn import distributed\n"
            "def finishing_the_run():\n    os.abort()\n"
            "distributed.report_crashes()\nfinishing_the_run()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode < 0
    assert "Fatal Python error: Aborted" in done.stderr
    assert "finishing_the_run" in done.stderr


def test_ending_a_process_without_a_process_group_is_harmless():
    distributed.end_process()
    assert not distributed.active()


def test_two_processes_train_like_one_process_with_the_same_global_batch(data_root, in_tmp_dir):
    overrides = dict(train_batch_size=128)
    single = prepare_run("HierTCN", ddp_workers.DATASET,
                         config_dict=ddp_workers.config_dict(data_root, **overrides))
    # with this batch size every global batch of both epochs has chunks for both ranks, so
    # the ranks' batches are exactly the single process's (no batch is merged)
    probe = SequenceTrainDataLoader(single.config, single.train_data.dataset)
    assert all(len(chunks) >= WORLD for _ in range(2) for chunks in probe._plan_epoch())
    history = ddp_workers.train_epochs(single, 2)
    ranks = spawn("train", data_root, in_tmp_dir, overrides)
    total_targets = len(single.train_data.targets) and int(single.train_data.targets.sum())
    for epoch, (loss, targets) in enumerate(history):
        assert targets == total_targets
        # every target once across the ranks
        assert sum(ranks[r]["history"][epoch][1] for r in ranks) == total_targets
        # the rank losses are weighted batch means: their mean over ranks is the global one
        ddp_loss = sum(ranks[r]["history"][epoch][0] for r in ranks) / WORLD
        assert ddp_loss == pytest.approx(loss, rel=1e-4), epoch
    # the same weights on every rank, and those of the single process
    for name, value in single.model.state_dict().items():
        first, second = (ranks[r]["state"][name] for r in range(WORLD))
        assert torch.equal(first, second), name
        assert torch.allclose(first, value, atol=1e-5), name


LAST_SESSION = {"split": {"last_session": "valid_and_test"}, "order": "TO", "group_by": "user",
                "mode": "full"}


@pytest.mark.parametrize("overrides", [
    dict(metrics=["Recall", "MRR", "NDCG", "GAUC"]),  # GAUC reads every row's mean rank
    dict(metric_averaging="users", eval_args=LAST_SESSION),
    dict(model="GRU4Rec"),  # a built-in model, RecBole's own training loader
])
def test_distributed_evaluation_equals_one_process_exactly(data_root, in_tmp_dir, overrides):
    single_overrides = dict(overrides)
    model = single_overrides.pop("model", "HierTCN")
    single = prepare_run(model, ddp_workers.DATASET,
                         config_dict=ddp_workers.config_dict(data_root, eval_batch_size=16,
                                                             **single_overrides))
    single.trainer._train_epoch(single.train_data, 0)  # weights that are not the initial ones
    state_file = os.path.join(str(in_tmp_dir), "state.pt")
    torch.save(single.model.state_dict(), state_file)
    expected = dict(single.trainer.evaluate(single.test_data, load_best_model=False))
    ranks = spawn("evaluate", data_root, in_tmp_dir, dict(eval_batch_size=16, **overrides),
                  state_file)
    assert ranks[0]["test"] == expected and ranks[1]["test"] == expected


UNI100 = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni100"}


@pytest.mark.parametrize("metrics, valid_metric", [(["Recall", "MRR", "GAUC"], "MRR@10"),
                                                   (["AUC", "LogLoss"], "AUC")])
def test_sampled_and_value_metrics_run_under_ddp_and_the_ranks_agree(data_root, in_tmp_dir,
                                                                     metrics, valid_metric):
    """Sampled evaluation draws its candidates per rank, so only agreement is asserted."""
    ranks = spawn("fit", data_root, in_tmp_dir, dict(
        model="GRU4Rec", use_session_dataset=False, eval_args=UNI100, metrics=metrics,
        valid_metric=valid_metric, epochs=1, eval_batch_size=16))
    assert ranks[0]["test"] == ranks[1]["test"] and len(ranks[0]["test"]) >= len(metrics)


def test_a_two_process_run_saves_one_checkpoint_reproduces_its_test_and_resumes(data_root,
                                                                              in_tmp_dir):
    from tests.conftest import reload_and_test

    whole = spawn("fit", data_root, in_tmp_dir, dict(epochs=2))
    assert whole[0]["model_file"] == whole[1]["model_file"]
    assert os.listdir(in_tmp_dir / "saved") == [os.path.basename(whole[0]["model_file"])]
    assert whole[0]["test"] == whole[1]["test"]
    *_, again = reload_and_test(whole[0]["model_file"])  # in this one process
    assert dict(again) == whole[0]["test"]
    # stopped after one epoch, resumed by two processes: the uninterrupted run's test
    first = spawn("fit", data_root, in_tmp_dir, dict(epochs=1))
    resumed = spawn("fit", data_root, in_tmp_dir,
                    dict(epochs=2, resume_checkpoint=first[0]["model_file"]))
    assert resumed[0]["test"] == whole[0]["test"]


def test_the_entry_point_with_nproc_2_matches_one_process(data_root, in_tmp_dir):
    """``run(..., nproc=2)`` (what ``run_recbole_hiertcn.py --nproc=2`` calls): spawned
    processes that register the plugin themselves, train, test, and hand back the results."""
    from recbole_hiertcn.quick_start import run

    settings = ddp_workers.config_dict(data_root, epochs=2, train_batch_size=128)
    one = run("HierTCN", ddp_workers.DATASET, config_dict=settings)
    two = run("HierTCN", ddp_workers.DATASET, config_dict=settings, nproc=2,
              port=str(free_port()))
    assert two["model"] is None and os.path.exists(two["model_file"])
    for key, value in one["test_result"].items():
        assert two["test_result"][key] == pytest.approx(value, abs=2e-3), key


def test_recboles_own_multi_process_run_finds_the_plugin_in_every_process(data_root, in_tmp_dir):
    """``recbole.quick_start.run(model="HierTCN", nproc=2)``: RecBole spawns the processes, and
    each one knows HierTCN."""
    from recbole.quick_start import run

    settings = ddp_workers.config_dict(data_root, epochs=1)
    result = run("HierTCN", ddp_workers.DATASET, config_dict=settings, nproc=2,
                 port=str(free_port()))
    assert set(result["test_result"]) >= {"recall@10", "mrr@10"}
