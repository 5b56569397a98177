"""The main job: ``python -m d2l_hpo run`` (random search over LeNet) and
``python -m d2l_hpo plot NAME`` (redraw the figures of a past run)."""

from __future__ import annotations

import argparse
import math
import os
import sys

from d2l_hpo.search.registry import EARLY_STOPPING, SEARCHERS

# The embedded default: a few minutes on a 2-core laptop without a GPU.
DEFAULTS = {"workers": 2, "trials": 8, "max_wallclock_time": 600.0, "epochs": 3,
            "data_fraction": 1.0, "seed": 0, "scheduling": "async"}


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m d2l_hpo",
        description="Distributed hyperparameter search for d2l's LeNet on Fashion-MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="random search over the LeNet space; writes results, figures, summary",
        description="Random search over LeNet's learning rate and batch size on "
                    "Fashion-MNIST, trials run as local processes. Writes results.csv, "
                    "trials.csv, PNG figures and summary.md into RESULTS_DIR/NAME.")
    run.add_argument("--workers", type=_positive_int, default=DEFAULTS["workers"],
                     help="trials run at the same time (default %(default)s)")
    run.add_argument("--trials", type=_positive_int, default=DEFAULTS["trials"],
                     help="number of trials to run to completion (default %(default)s)")
    run.add_argument("--max-wallclock-time", type=_positive_float,
                     default=DEFAULTS["max_wallclock_time"],
                     help="stop after this many seconds, whatever is running "
                          "(default %(default)s)")
    run.add_argument("--scheduling", choices=["async", "sync"], default=DEFAULTS["scheduling"],
                     help="async: a new trial whenever a worker frees up; sync: batches of "
                          "WORKERS trials (default %(default)s)")
    run.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"],
                     help="training epochs per trial (default %(default)s)")
    run.add_argument("--data-fraction", type=_fraction, default=DEFAULTS["data_fraction"],
                     help="fraction of Fashion-MNIST to train and validate on "
                          "(default %(default)s)")
    run.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                     help="seed of the sequence of configurations (default %(default)s)")
    run.add_argument("--name", default=None,
                     help="experiment name (default: lenet-objective-TIMESTAMP)")
    run.add_argument("--results-dir", default=None,
                     help="folder for experiments (default: runs/, or $SYNETUNE_FOLDER)")
    run.add_argument("--data", default=None,
                     help="folder with the Fashion-MNIST idx files (default: search the "
                          "usual places, see d2l_hpo.lesson.data)")
    run.add_argument("--max-trial-time", type=_positive_float, default=None,
                     help="kill a trial that runs longer than this many seconds "
                          "(default: no limit)")
    run.add_argument("--max-failures", type=int, default=3,
                     help="stop when more trials than this fail (default %(default)s)")
    run.add_argument("--resume", metavar="NAME", default=None,
                     help="continue the interrupted experiment NAME with its own settings "
                          "(other flags but --results-dir are ignored)")
    run.add_argument("--searcher", choices=list(SEARCHERS), default="random",
                     help="what to try next: random, or a searcher that learns from "
                          "finished trials (default %(default)s)")
    run.add_argument("--early-stopping", choices=list(EARLY_STOPPING), default=None,
                     help="stop poor trials early with asynchronous successive halving "
                          "(default: every trial runs all its epochs)")
    run.add_argument("--grace-period", type=_positive_int, default=1,
                     help="with --early-stopping: epochs before a trial can be stopped "
                          "(default %(default)s)")
    run.add_argument("--reduction-factor", type=_positive_float, default=3,
                     help="with --early-stopping: each rung keeps the best 1/F of the "
                          "trials (default %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    plot = sub.add_parser("plot", help="redraw the figures of a past run",
                          description="Redraw the PNG figures and summary.md of a past run.")
    plot.add_argument("name", help="experiment name (under --results-dir) or folder")
    plot.add_argument("--results-dir", default=None,
                      help="folder for experiments (default: runs/, or $SYNETUNE_FOLDER)")
    plot.add_argument("--trust-pickle", action="store_true",
                      help="for a plain Syne Tune folder: also unpickle its tuner.dill (runs "
                           "the code in it: only for a folder you wrote yourself)")
    return parser


def _run_settings(args) -> dict:
    """Keyword arguments of run_search, from the flags or from a run to resume."""
    import d2l_hpo
    from d2l_hpo.run.settings import read_settings
    from d2l_hpo.experiment.results import resolve_experiment_path

    if args.resume is None:
        space = d2l_hpo.lenet_space(max_epochs=args.epochs)
        space["data_fraction"] = args.data_fraction
        return dict(config_space=space, n_workers=args.workers, max_num_trials=args.trials,
                    max_wallclock_time=args.max_wallclock_time, scheduling=args.scheduling,
                    seed=args.seed, name=args.name,
                    initial_config=dict(d2l_hpo.LENET_INITIAL_CONFIG),
                    results_dir=args.results_dir, progress=not args.no_progress,
                    max_trial_time=args.max_trial_time, max_failures=args.max_failures,
                    searcher=args.searcher,
                    early_stopping=_rule(args.early_stopping, args.grace_period,
                                         args.reduction_factor))
    path = resolve_experiment_path(args.resume, args.results_dir)
    old, _ = read_settings(path)
    if "max_epochs" not in old.constants or old.objective != "lenet-objective":
        raise ValueError(
            f"'{old.name}' did not come from `python -m d2l_hpo run` (its objective is "
            f"{old.objective}); resume it the way it was started, e.g. from Python with "
            "run_search(objective, space, name=..., resume=True)")
    space = d2l_hpo.lenet_space(max_epochs=old.constants["max_epochs"])
    space.update(old.constants)
    initial = old.initial_config
    return dict(config_space=space, n_workers=old.n_workers,
                max_num_trials=old.max_num_trials,
                max_wallclock_time=old.max_wallclock_time, scheduling=old.scheduling,
                seed=old.seed, name=old.name, results_dir=path.parent,
                initial_config={k: initial[k] for k in old.config_columns} if initial else None,
                progress=not args.no_progress, max_trial_time=old.max_trial_time,
                max_failures=old.max_failures, resume=True,
                searcher=old.searcher, resource_attr=old.resource_attr,
                early_stopping=_rule(old.early_stopping, old.grace_period,
                                     old.reduction_factor))


def _rule(name, grace_period, reduction_factor):
    from d2l_hpo.search.registry import early_stopping_rule

    return early_stopping_rule(name, grace_period=grace_period,
                               reduction_factor=reduction_factor)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import d2l_hpo

    if args.command == "plot":
        try:
            exp = d2l_hpo.load_experiment(args.name, results_dir=args.results_dir,
                                          trust_pickle=args.trust_pickle)
        except (FileNotFoundError, ValueError) as err:  # missing or damaged files
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        from d2l_hpo.lesson.data import ENV_VAR, FashionMNISTNotFoundError, find_fashion_mnist
        try:  # find (and stage) the data once, before any trial starts
            root = find_fashion_mnist(args.data)
            os.environ[ENV_VAR] = str(root.resolve())  # trials look here first
        except FashionMNISTNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        try:
            kwargs = _run_settings(args)
            exp = d2l_hpo.run_search(d2l_hpo.lenet_objective, **kwargs)
        except KeyboardInterrupt:
            return 130  # the runner said where the results are and how to resume
        except (ValueError, TypeError, OSError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    from d2l_hpo.report import write_report

    try:
        written = write_report(exp)
    except OSError as err:
        print(f"error: cannot write the figures and summary.md into {exp.path}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2
    print((exp.path / "summary.md").read_text())
    print(f"Results and figures in {exp.path}:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
