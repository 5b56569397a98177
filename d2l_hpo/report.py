"""What a finished run leaves for people: ``summary.md`` and the figures, in the
experiment's folder (``python -m d2l_hpo run`` and ``plot`` write them)."""

from __future__ import annotations

import json
from pathlib import Path

from d2l_hpo.common.status import COMPLETED, ENDED
from d2l_hpo.experiment.storage import config_column


def write_report(exp) -> list[Path]:
    """Draw the figures of ``exp`` into its folder and write ``summary.md``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from d2l_hpo import plots

    figures = []
    for filename, draw in [("trials_over_time.png", plots.plot_trials_over_time),
                           ("best_so_far.png", plots.plot_best_so_far),
                           ("worker_timeline.png", plots.plot_worker_timeline)]:
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        draw(exp, ax=ax)
        fig.savefig(exp.path / filename, dpi=110, bbox_inches="tight")  # legends sit outside
        plt.close(fig)
        figures.append(exp.path / filename)
    summary = exp.summary()
    lines = [f"# {exp.name}", "",
             f"- scheduling: {exp.scheduling}, {exp.n_workers} workers",
             f"- trials: {summary['trials']} (" + ", ".join(
                 f"{summary[s]} {s}" for s in ENDED if summary[s] or s == COMPLETED) + ")",
             f"- wall-clock: {exp.wallclock:.1f} s; workers busy {exp.utilization:.1%} of it",
             f"- set-up before the clock: {exp.setup_time:.1f} s"
             + {"started": " (the trial server imported the objective's modules)",
                "reused": " (a warm trial server from an earlier search was reused)"}.get(
                 exp.settings.get("warm_server", ""), "")
             + f"; the whole call {exp.call_time:.1f} s",
             *([f"- early stopping: ASHA (grace period {exp.settings.get('grace_period')}, "
                f"reduction factor {exp.settings.get('reduction_factor')}); "
                f"{summary['pruned']} trials pruned; {summary['epochs_spent']} "
                f"{exp.resource_attr}s spent in all"]
               if exp.settings.get("early_stopping") else []),
             f"- best {exp.metric}: {exp.best_value:.4f}",
             f"- best configuration: {json.dumps(exp.best_config)}", "",
             "| trial | status | worker | duration (s) | "
             + " | ".join(exp.config_columns) + f" | best {exp.metric} |",
             "|" + "---|" * (5 + len(exp.config_columns))]
    for row in exp.trials.itertuples(index=False):
        row = row._asdict()
        config = " | ".join(_fmt(row[config_column(c)]) for c in exp.config_columns)
        lines.append(f"| {row['trial_id']} | {row['status']} | {row['worker']} | "
                     f"{row['duration']:.1f} | {config} | {_fmt(row[f'best_{exp.metric}'])} |")
    notes = exp.settings.get("messages") or []
    if notes:
        lines += ["", "What the run said:", ""] + [f"- {note}" for note in notes]
    for trial_id, error in summary["errors"].items():
        lines += ["", f"Trial {trial_id} failed; the end of its stderr:", "", "```",
                  error or "(empty)", "```"]
    (exp.path / "summary.md").write_text("\n".join(lines) + "\n")
    return figures + [exp.path / "summary.md"]


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
