"""The plugin's trainer: RecBole's ``Trainer`` with run-owned, resumable checkpoints, exact
training and evaluation across DDP processes and, as options, per-user metric averaging, a step
decay of the learning rate and a fused Adam.

RecBole's ``Trainer`` names its checkpoint ``<Model>-<date>_<h-m-s>.pth``: two runs of one model
started in the same second write and reload one file, and a run can then test the other run's
weights without noticing. It also saves no random state, so a resumed run drifts from the run
it continues. :class:`HierTCNTrainer`:

* names the checkpoint ``<Model>-<date>_<h-m-s>-<run id>.pth`` and writes it atomically (a
  temporary file renamed into place, so a crash never leaves half a checkpoint);
* stores the run id in the checkpoint, and the best-model reload refuses a file another run
  wrote (:class:`CheckpointMismatch`) instead of silently testing other weights;
* stores every random stream (:mod:`~recbole_hiertcn.trainer.random_state`) and the best
  validation result, and :meth:`~HierTCNTrainer.resume_checkpoint` puts them back, so a run
  stopped after epoch k and resumed ends with the weights and metrics of the uninterrupted run;
* with ``keep_latest_checkpoint``, also keeps the state after every validation beside the best
  one (:func:`latest_file_name`), so a resumed run repeats no epoch that was validated, not
  only none up to the best;
* reads every checkpoint through :func:`recbole_hiertcn.checkpoint.load_checkpoint`;
* calls its other parts explicitly: :mod:`~recbole_hiertcn.trainer.fused_optimizer` (the
  optimiser), :mod:`~recbole_hiertcn.trainer.lr_schedule` (each epoch's rate),
  :mod:`~recbole_hiertcn.trainer.ddp` (the loss and the evaluation under DDP) and
  :mod:`~recbole_hiertcn.trainer.user_averaging` (the evaluator with ``metric_averaging:
  users``).

It is what RecBole's ``get_trainer`` returns for HierTCN and HRNN; the plugin's entry points put
it in front of the built-in models' trainers too (:func:`run_trainer`).
"""

import os
import uuid

import torch
from recbole.trainer import Trainer
from recbole.utils import get_local_time, get_trainer, set_color

from recbole_hiertcn import distributed
from recbole_hiertcn.checkpoint import load_checkpoint
from recbole_hiertcn.trainer import ddp, fused_optimizer, lr_schedule, random_state
from recbole_hiertcn.trainer import user_averaging

RUN_ID = "run_id"  # config key and checkpoint key
LATEST_OF = "latest_of"  # key of a latest-state checkpoint: the file name of its run's best one
STOPPED = "stopped"  # key of a latest-state checkpoint: early stopping ended the run there
LATEST_SUFFIX = "-latest.pth"
FIT_ARGUMENTS = ("valid_data", "verbose", "saved", "show_progress", "callback_fn")
SERVING = "serving"  # checkpoint key: what an export needs besides the weights (HierTCN)


class CheckpointMismatch(RuntimeError):
    """The checkpoint to reload was written by another run."""


def read_keep_latest(config):
    """``keep_latest_checkpoint`` (default False), checked to be a bool."""
    keep = config["keep_latest_checkpoint"]
    if keep is None:
        return False
    if not isinstance(keep, bool):
        raise ValueError(f"config key `keep_latest_checkpoint` must be True or False, got "
                         f"{keep!r}")
    return keep


def new_run_id():
    """A random id that no other run takes (122 random bits)."""
    return uuid.uuid4().hex


def checkpoint_file_name(model, run_id):
    """RecBole's ``<Model>-<date>_<h-m-s>`` plus the first 12 hex digits of the run id."""
    return f"{model}-{get_local_time()}-{run_id[:12]}.pth"


def latest_file_name(best_file):
    """The latest-state checkpoint beside the best one: ``<best name>-latest.pth``."""
    stem = best_file[:-len(".pth")] if best_file.endswith(".pth") else best_file
    return stem + LATEST_SUFFIX


def save_atomically(state, path):
    """``torch.save`` to a temporary file next to ``path``, then rename it into place."""
    temporary = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        torch.save(state, temporary, pickle_protocol=4)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class HierTCNTrainer(Trainer):
    """RecBole's ``Trainer`` with the parts listed in the module docstring (the trainer of
    HierTCN and HRNN). Subclassing RecBole's ``Trainer`` cooperatively (every override calls
    ``super()``), it also goes in front of another RecBole trainer (:func:`run_trainer`).

    The run id comes from ``config["run_id"]`` when the entry point set one (so that logs and
    checkpoint share it), else a new one is drawn.
    """

    _eval_batch = 0  # evaluation batches seen in this evaluation (which rank scores which)
    _eval_users = None  # with per-user averaging, during an evaluation: each batch's users

    def __init__(self, config, model):
        # read before RecBole's __init__, which builds the optimiser (_build_optimizer)
        self._fused_optimizer = fused_optimizer.read_fused(config)
        super().__init__(config, model)
        # the settings of the other parts, checked in this order
        self._lr_schedule = lr_schedule.read_schedule(config)
        self._ddp = distributed.is_distributed(config)
        self._per_user = user_averaging.read_averaging(config)
        self.run_id = config[RUN_ID] or new_run_id()
        # Under DDP every rank takes rank 0's id and file name (their clocks may differ).
        self.run_id, self.saved_model_file = distributed.broadcast_from_first((
            self.run_id,
            os.path.join(self.checkpoint_dir, checkpoint_file_name(config["model"], self.run_id))))
        self._train_data = None
        self._last_valid_result = None
        self._random_state_to_restore = None
        self._keep_latest = read_keep_latest(config)
        self._resumed_finished = False  # resumed from a latest state of a run that had ended

    # ------------------------------------------------------------------ optimiser
    def _build_optimizer(self, **kwargs):
        fused = fused_optimizer.build_fused(
            self._fused_optimizer, kwargs.get("learner", self.learner),
            kwargs.get("params", self.model.parameters()),
            kwargs.get("learning_rate", self.learning_rate),
            kwargs.get("weight_decay", self.weight_decay))
        return super()._build_optimizer(**kwargs) if fused is None else fused

    # ------------------------------------------------------------------ saving
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self._writes_files():
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        # RecBole saves before it updates best_valid_result; a save follows the validation
        # that improved, so the latest validation result is the best one.
        save_atomically(self._checkpoint_state(epoch, self._last_valid_result), path)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def _save_latest(self, epoch, stopped):
        """The state after ``epoch``'s validation (its best score and counter updated), pointing
        at this run's best checkpoint. Written after the best one: a process killed between the
        two leaves a latest state one validation behind the best file it names, and the resumed
        run trains that epoch again (the same epoch, when training is deterministic)."""
        if not self._writes_files():
            return
        state = self._checkpoint_state(epoch, self.best_valid_result)
        state[LATEST_OF] = os.path.basename(self.saved_model_file)
        state[STOPPED] = bool(stopped)
        save_atomically(state, latest_file_name(self.saved_model_file))

    def _writes_files(self):
        """Under DDP only rank 0 writes checkpoints."""
        return self.config["single_spec"] or self.config["local_rank"] == 0

    def _checkpoint_state(self, epoch, best_valid_result):
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            RUN_ID: self.run_id,
            "best_valid_result": best_valid_result,
            "random_state": random_state.capture(self._train_data),
        }
        model = getattr(self.model, "module", self.model)  # under DDP, the wrapped model
        if hasattr(model, "serving_description"):
            state[SERVING] = model.serving_description()
        return state

    # ------------------------------------------------------------------ training
    def fit(self, train_data, *args, **kwargs):
        self._train_data = train_data
        if self._resumed_finished:
            # nothing to train, and the best checkpoint is in place already (resume_checkpoint
            # copied it); RecBole would save the best weights again as epoch -1, and a resume
            # from that file would start the run over
            return self.best_valid_score, self.best_valid_result
        if self._random_state_to_restore is not None:
            # Restored here, right before the first epoch, so that nothing done between
            # resume_checkpoint and fit draws from the streams the next epoch needs.
            random_state.restore(self._random_state_to_restore, train_data)
            self._random_state_to_restore = None
        if self._keep_latest:
            # RecBole's Trainer.fit(train_data, valid_data, verbose, saved, show_progress,
            # callback_fn), every argument by name from here on
            kwargs.update(zip(FIT_ARGUMENTS, args))
            args = ()
            if kwargs.get("saved", True) and kwargs.get("valid_data") is not None:
                kwargs["callback_fn"] = self._keeping_latest(kwargs.get("callback_fn"))
        return super().fit(train_data, *args, **kwargs)

    def _keeping_latest(self, callback_fn):
        """RecBole calls ``callback_fn`` after each validation, once the best score, the
        counter of validations without a new best and the best checkpoint are updated: the
        moment to save the latest state too."""
        def after_validation(epoch, valid_score):
            # RecBole's early_stopping stops once the counter passes stopping_step
            self._save_latest(epoch, stopped=self.cur_step > self.stopping_step)
            if callback_fn:
                callback_fn(epoch, valid_score)
        return after_validation

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._ddp:
            loss_func = ddp.rank_weighted(loss_func or self.model.calculate_loss)
        lr_schedule.set_epoch_rate(self.optimizer, self.config["learning_rate"], epoch_idx,
                                   self._lr_schedule)
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func,
                                    show_progress=show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self._last_valid_result = result
        return score, result

    def resume_checkpoint(self, resume_file):
        """Continue the run saved in ``resume_file``, exactly as if it had not stopped.

        ``resume_file`` is a run's best checkpoint, or its latest state (``keep_latest_checkpoint``,
        :func:`latest_file_name`): training then continues after the last validated epoch, and
        the best checkpoint it names (in the same folder, of the same run) stays the one tested.
        A latest state at which the run had ended (early stopping, or this run's last epoch)
        trains no more: the best weights are put back for the test.

        Unlike RecBole, the resumed run keeps writing its own checkpoint (a copy of the resumed
        best state is saved there first, so the best model so far can be reloaded even if no
        later epoch improves, and with ``keep_latest_checkpoint`` a copy of the latest state
        beside it); ``resume_file`` is left as it is.

        Raises:
            ValueError: the checkpoint holds another model than this trainer's, or the best
                checkpoint a latest state names is missing or of another run.
        """
        resume_file = os.fspath(resume_file)
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        saved_model = checkpoint["config"]["model"]
        if saved_model.lower() != self.config["model"].lower():
            raise ValueError(f"resume_checkpoint: {resume_file} holds a {saved_model} model, but "
                             f"this run trains {self.config['model']}")
        best, latest, finished = checkpoint, None, False
        if LATEST_OF in checkpoint:
            latest, best = checkpoint, self._best_of_latest(resume_file, checkpoint)
            finished = latest[STOPPED] or latest["epoch"] + 1 >= self.epochs
            if latest["epoch"] + 1 > self.epochs:
                self.logger.warning(
                    f"{resume_file}: the run had trained {latest['epoch'] + 1} epochs, more "
                    f"than this run's epochs ({self.epochs}); it is taken as finished, and its "
                    f"best epoch ({best['epoch'] + 1}) may lie past {self.epochs}")
        state = best if latest is None or finished else latest
        self.start_epoch = self.epochs if finished else state["epoch"] + 1
        self._resumed_finished = finished
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state.get("best_valid_result")
        self._last_valid_result = self.best_valid_result
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.optimizer.load_state_dict(state["optimizer"])
        self._random_state_to_restore = state.get("random_state")
        if self._random_state_to_restore is None:
            self.logger.warning(f"{resume_file} holds no random state (written by RecBole's own "
                                "trainer): training resumes, but will not repeat the "
                                "uninterrupted run exactly")
        if self._writes_files():
            best[RUN_ID] = self.run_id
            save_atomically(best, self.saved_model_file)
            if latest is not None and self._keep_latest:
                # this run's own latest state, so that the newest one names this run's best
                # (only when latest states are kept: one never updated would rewind a resume)
                latest[RUN_ID] = self.run_id
                latest[LATEST_OF] = os.path.basename(self.saved_model_file)
                save_atomically(latest, latest_file_name(self.saved_model_file))
        distributed.barrier()
        self.logger.info(f"Resumed from {resume_file} at epoch {self.start_epoch}; this run "
                         f"saves to {self.saved_model_file}")

    def _best_of_latest(self, latest_file, latest):
        """The best checkpoint a latest state names, checked to be of the same run."""
        path = os.path.join(os.path.dirname(latest_file), latest[LATEST_OF])
        if not os.path.isfile(path):
            raise ValueError(f"resume_checkpoint: {latest_file} is the latest state of a run "
                             f"whose best checkpoint {path} is missing; resume from another "
                             f"checkpoint of the run, or start it again")
        best = load_checkpoint(path, map_location=self.device)
        if best.get(RUN_ID) != latest.get(RUN_ID):
            raise ValueError(f"resume_checkpoint: {path} was written by run {best.get(RUN_ID)}, "
                             f"not by the run of {latest_file} ({latest.get(RUN_ID)})")
        return best

    # ------------------------------------------------------------------ evaluation
    def load_best_model(self, model_file=None):
        """Load this run's best checkpoint (or ``model_file``) into the model.

        Raises:
            CheckpointMismatch: ``model_file`` is None and the checkpoint at this run's path was
                written by another run.
        """
        path = model_file or self.saved_model_file
        distributed.barrier()  # under DDP: rank 0 has finished writing it
        checkpoint = load_checkpoint(path, map_location=self.device)
        if model_file is None and checkpoint.get(RUN_ID) != self.run_id:
            raise CheckpointMismatch(
                f"{path} was written by run {checkpoint.get(RUN_ID)}, not by this run "
                f"({self.run_id}): another run wrote to this run's checkpoint, so its weights "
                f"are not the ones this run trained. Refusing to test them.")
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {path}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            self.load_best_model(model_file)  # the plugin's reload, never RecBole's
        evaluator, collector = self.evaluator, self.eval_collector
        # The evaluator of this one evaluation, chosen here and only here: with per-user
        # averaging it averages over users; under DDP the ranks' rows are gathered first, and
        # only this rank's batches are collected.
        if self._per_user:
            self._eval_users = []
            self.evaluator = user_averaging.UserAveragedEvaluator(self.evaluator,
                                                                  self._eval_users)
        if self._ddp and eval_data:
            self._eval_batch = 0
            self.evaluator = ddp.GatheringEvaluator(self.evaluator)
            self.eval_collector = ddp.SkippingCollector(collector)
        try:
            return super().evaluate(eval_data, load_best_model=False, model_file=model_file,
                                    show_progress=show_progress)
        finally:
            self.evaluator, self.eval_collector, self._eval_users = evaluator, collector, None

    def _scores_this_batch(self):
        """Whether this rank scores the next evaluation batch (every batch without DDP)."""
        batch, self._eval_batch = self._eval_batch, self._eval_batch + 1
        return not self._ddp or ddp.scores_batch(batch)

    def _full_sort_batch_eval(self, batched_data):
        if self._scores_this_batch():
            out = super()._full_sort_batch_eval(batched_data)
        else:
            out = ddp.other_ranks_batch(batched_data)
        if self._eval_users is not None:
            self._eval_users.append(out[0][self.config["USER_ID_FIELD"]].cpu())
        return out

    def _neg_sample_batch_eval(self, batched_data):
        if self._eval_users is not None:
            user_averaging.refuse_sampled_evaluation()
        if not self._scores_this_batch():
            return ddp.other_ranks_batch(batched_data)
        return super()._neg_sample_batch_eval(batched_data)

    def _map_reduce(self, result, num_sample):
        """Under DDP the metrics are already those of all rows (see
        :class:`~recbole_hiertcn.trainer.ddp.GatheringEvaluator`)."""
        return result


_run_trainers = {}


def run_trainer(model_type, model):
    """The trainer class for ``model``: :class:`HierTCNTrainer` in front of RecBole's trainer
    of it (``HierTCNTrainer`` itself for the plugin's models).

    Trainers that do not derive from RecBole's ``Trainer`` (the decision-tree ones) are
    returned as they are.
    """
    base = get_trainer(model_type, model)
    if issubclass(base, HierTCNTrainer) or not issubclass(base, Trainer):
        return base
    if base not in _run_trainers:
        _run_trainers[base] = type(base.__name__, (HierTCNTrainer, base),
                                   {"__module__": __name__, "__doc__": base.__doc__})
    return _run_trainers[base]
