"""Compare models on one dataset under both protocols and several seeds, resumable.

    python -m benchmarks.compare benchmarks/ml-100k.yaml [--out results/ml-100k] [--only HierTCN GRU4Rec] [--workers 2] [--commit]

The plan (:mod:`~benchmarks.compare.plan`) names the dataset, the protocols, the seeds, the
models (each a RecBole model name plus its own overrides), the settings every run shares and,
optionally, a ``focus`` model. Every (protocol, seed, model) trains in its own process
(:mod:`~benchmarks.compare.runner`) through ``recbole_hiertcn.quick_start`` - RecBole's
trainer, best checkpoint reloaded for the test - and its figures are appended to ``runs.csv``
(:mod:`~benchmarks.compare.store`) as soon as it ends, so an interrupted comparison resumes
where it stopped; a run that was stopped half way resumes from its last checkpoint
(``<out>/progress/``, or ``<out>/parked/`` where ``--park`` committed it for a later
checkout), before any run that has not begun. ``--workers N`` trains N runs at a
time (set the plan's ``threads`` so that N x threads fits the CPU cores).

After every run the report is rewritten (:mod:`~benchmarks.compare.report`, figures from
:mod:`~benchmarks.compare.summary`, tests from :mod:`~benchmarks.compare.significance`):
``results.md`` - per protocol the mean and standard deviation over seeds of Recall, MRR and
NDCG at 5, 10 and 20, the validation score, training seconds per epoch, the epoch of the best
validation score and peak memory of every model, the leader (best mean test MRR@10) in bold;
with a ``focus``, each of the focus model's labels against the best other model on each metric;
and the leader against every other model (two-sided t-tests over seeds: paired, or one-sample
against a model the plan runs with one seed) - and the charts ``metrics_<protocol>.png`` and
``validation_<protocol>.png``.

Equal tuning (the plan's ``tuning:``): every model named in ``tuning.grid`` gets every
combination of its own knobs - the same number of trials for each, or the plan is refused - at
``tuning.seed`` under each protocol; the setting with the best validation score is chosen (the
test split plays no part), then the plan's seeds run at it (the tuning seed's trial is reused).
Trials go to ``tuning.csv`` and ``tuning.md``.

The modules: :mod:`~benchmarks.compare.plan` (the plan and what it says of each run),
:mod:`~benchmarks.compare.store` (the files), :mod:`~benchmarks.compare.runner` (training the
runs: the child process and the pool), :mod:`~benchmarks.compare.significance`,
:mod:`~benchmarks.compare.summary`, :mod:`~benchmarks.compare.report`,
:mod:`~benchmarks.compare.pending` (which runs are still to go),
:mod:`~benchmarks.compare.todo` (``--todo`` and the report's "Still to run": their cost),
:mod:`~benchmarks.compare.park` (``--park``: begun runs carried to the next checkout) and
:mod:`~benchmarks.compare.driver` (the command).
"""

from benchmarks.compare.driver import compare, main, report_extended, reuse_trial
from benchmarks.compare.pending import (PROGRESS_CURVES, cut_by_a_lower_cap, final_jobs,
                                        parked_folder, progress_folder, resumed_first,
                                        reusable_trial, tuning_jobs)
from benchmarks.compare.plan import (PLAN_ONLY_KEYS, PROTOCOLS, check_plan, choose,
                                     chosen_settings, focus_labels, grid_trials, job_spec,
                                     load_plan, model_name, model_seeds, run_settings,
                                     setting_key, setting_text, tuned_as, valid_metric)
from benchmarks.compare.report import (charts, headline_lines, markdown, tuning_markdown,
                                       write_summary)
from benchmarks.compare.runner import (RUN_BUSY, child_environment, earlier_attempt,
                                       only_process_training, prepare_data, record_epochs,
                                       run_job, run_one, run_pool)
from benchmarks.compare.significance import (SeedTest, one_sample_difference,
                                             paired_difference, seed_test)
from benchmarks.compare.store import (FIELDS, METRICS, by_seed, commit_results, curve_name,
                                      exclusive_results_folder, final_rows, load_curves,
                                      read_runs, record_run, run_key, write_json)
from benchmarks.compare.summary import (COMPARED_METRICS, LEADER_METRIC, against_best_other,
                                        focus_over_best_other, leader, leader_against_others,
                                        summarise)
from benchmarks.compare.todo import ToGo, estimate, print_todo, still_to_run_lines

__all__ = [
    "compare", "cut_by_a_lower_cap", "final_jobs", "main", "report_extended", "reusable_trial",
    "reuse_trial", "tuning_jobs", "estimate", "print_todo", "ToGo", "still_to_run_lines",
    "PLAN_ONLY_KEYS", "PROTOCOLS", "check_plan", "choose", "chosen_settings",
    "focus_labels", "grid_trials", "job_spec", "load_plan", "model_name", "model_seeds",
    "run_settings", "setting_key", "setting_text", "tuned_as", "valid_metric",
    "charts", "headline_lines", "markdown", "tuning_markdown", "write_summary",
    "PROGRESS_CURVES", "RUN_BUSY", "child_environment", "earlier_attempt",
    "only_process_training", "parked_folder", "prepare_data", "progress_folder",
    "record_epochs",
    "resumed_first", "run_job", "run_one", "run_pool",
    "SeedTest", "one_sample_difference", "paired_difference", "seed_test",
    "FIELDS", "METRICS", "by_seed", "commit_results", "curve_name", "exclusive_results_folder",
    "final_rows", "load_curves", "read_runs", "record_run", "run_key", "write_json",
    "COMPARED_METRICS", "LEADER_METRIC", "against_best_other", "focus_over_best_other",
    "leader", "leader_against_others", "summarise",
]
