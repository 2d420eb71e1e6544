"""What a search ranks by and prints: scores, ranking tiers, statuses, best_config.yaml, progress, HParams.

No Ray here: the loop runs directly, the report reads plain rows.
"""

import logging
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import metadata as hparams_metadata

from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.config import load_config
from raysearch.constants import EXPERIMENT_FILE, SCORE_WINDOW, SMOKE_OVERRIDES, score_key
from raysearch.progress import QuietRayLogs, eta_seconds, short_names, trial_epoch_budget
from raysearch.objectives import Constraint, Objective
from raysearch.report import resume_command, write_best_config
from raysearch.rows import TrialRow, make_row, rank_rows, trial_status
from raysearch.spaces import load_space
from raysearch.summaries import HParamColumn, TrialSummary, write_experiment_hparams
from raysearch.loop import recent_scores, run_trial

TINY = ["data.synthetic_train=64", "data.synthetic_val=16", "data.val_images=16", "train.batch_size=16",
        "train.preview_images=0", "generator.base_width=8", "generator.max_width=16", "train.steps_per_epoch=2",
        "train.checkpoint_every=1"]


class Reports:
    def __init__(self, root: Path):
        self.root, self.reports, self.checkpoints = root, [], {}

    def __call__(self, metrics, checkpoint_dir):
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            keep = self.root / f"epoch_{metrics['epoch']:04d}"
            save_checkpoint(load_checkpoint(checkpoint_dir), keep)
            self.checkpoints[metrics["epoch"]] = keep


# ---------------------------------------------------------------- the score


def test_score_is_the_mean_of_the_last_epochs():
    history = [{"val/swd": v} for v in (100.0, 10.0, 20.0, 30.0)]
    assert SCORE_WINDOW == 3
    assert recent_scores(history) == {"score/val/swd": 20.0}
    assert recent_scores(history[:1]) == {"score/val/swd": 100.0}  # fewer epochs at the start


def test_every_report_carries_the_score_and_it_survives_a_resume(tmp_path):
    first = Reports(tmp_path / "a")
    run_trial(load_config("l2", TINY + ["train.epochs=2"]), first)
    assert [r["epoch"] for r in first.reports] == [1, 2]
    for report in first.reports:
        assert score_key("val/psnr") in report and score_key("val/swd") in report
    assert first.reports[1][score_key("val/psnr")] == pytest.approx(
        (first.reports[0]["val/psnr"] + first.reports[1]["val/psnr"]) / 2)

    # Resumed from epoch 2: the epoch-3 score still averages epochs 1, 2 and 3.
    resumed = Reports(tmp_path / "b")
    run_trial(load_config("l2", TINY + ["train.epochs=3"]), resumed, checkpoint=first.checkpoints[2])
    (third,) = resumed.reports
    values = [first.reports[0]["val/psnr"], first.reports[1]["val/psnr"], third["val/psnr"]]
    assert third["epoch"] == 3
    assert third[score_key("val/psnr")] == pytest.approx(sum(values) / 3)


# ---------------------------------------------------------------- ranking


SWD = (Objective("val/swd", "min"),)


def _row(name, score, status="finished", psnr=20.0, epochs=10):
    scores = {"val/swd": score} if score is not None else {}
    if psnr is not None:
        scores["val/psnr"] = psnr
    return TrialRow(trial=name, params={}, score=score, final=score, best=score, epochs=epochs, status=status,
                    scores=scores)


def test_ranking_uses_the_score_not_the_best_epoch():
    lucky = make_row("lucky", {}, {"val/swd": 150.0, "score/val/swd": 140.0, "epoch": 10},
                     [200.0, 90.0, 150.0], "val/swd", "min", "finished")
    steady = make_row("steady", {}, {"val/swd": 110.0, "score/val/swd": 112.0, "epoch": 10},
                      [115.0, 111.0, 110.0], "val/swd", "min", "finished")
    assert lucky.best == 90.0 and lucky.score == 140.0
    assert [r.trial for r in rank_rows([lucky, steady], SWD)] == ["steady", "lucky"]


def test_a_trial_that_ended_early_does_not_outrank_finished_trials():
    rows = [_row("early", 50.0, "stopped", epochs=2), _row("done", 120.0), _row("cut", 40.0, "interrupted", epochs=3),
            _row("nan", 1e4, "diverged"), _row("broken", None, "error"), _row("done2", 100.0)]
    assert [r.trial for r in rank_rows(rows, SWD)] == ["done2", "done", "cut", "early", "nan", "broken"]


def test_trials_below_the_psnr_floor_rank_after_all_above_it():
    rows = [_row("sharp_but_wrong", 60.0, psnr=15.0), _row("faithful", 100.0, psnr=19.5),
            _row("faithful_stopped", 90.0, "stopped", psnr=19.2, epochs=3), _row("unknown_psnr", 50.0, psnr=None)]
    floor = (Constraint("val/psnr", ">=", 19.0),)  # the best fill's 20 dB less 1 dB
    assert [r.trial for r in rank_rows(rows, SWD, floor)] == [
        "faithful", "faithful_stopped", "unknown_psnr", "sharp_but_wrong"]
    # No floor: realism alone.
    assert rank_rows(rows, SWD)[0].trial == "unknown_psnr"


def test_statuses_tell_stopped_interrupted_diverged_error_and_finished_apart():
    last = {"epoch": 3}
    assert trial_status({"epoch": 10}, error=False, max_epochs=10) == "finished"
    assert trial_status(last, error=False, max_epochs=10) == "stopped"
    assert trial_status(last, error=False, max_epochs=10, done=False, search_running=False) == "interrupted"
    assert trial_status({}, error=False, max_epochs=10, done=False, search_running=False) == "interrupted"
    assert trial_status(last, error=False, max_epochs=10, done=False) == "running"
    assert trial_status({"epoch": 3, "diverged": 1}, error=False, max_epochs=10) == "diverged"
    assert trial_status(last, error=True, max_epochs=10) == "error"


# ---------------------------------------------------------------- best_config.yaml and the resume command


def test_best_config_trains_as_many_epochs_as_its_trial_without_smoke_settings(tmp_path):
    overrides = SMOKE_OVERRIDES + ["objective.l2_weight=0.5"]
    space = load_space("wgan", overrides)
    (tmp_path / EXPERIMENT_FILE).write_text(yaml.safe_dump({"overrides": overrides}))
    best = TrialRow(trial="wgan_1", params={"optim.generator_lr": 3e-4}, score=100.0, final=100.0, best=99.0,
                    epochs=7, status="stopped", scores={"val/swd": 100.0, "val/psnr": 20.0})
    written = write_best_config([best], space, str(tmp_path), overrides)
    document = yaml.safe_load(Path(written).read_text())
    assert "after 7 epochs" in document["description"]
    cfg = load_config(written)
    assert cfg.train.epochs == 7
    assert cfg.optim.generator_lr == 3e-4 and cfg.objective.l2_weight == 0.5  # the trial's and the user's values
    plain = load_config("wgan")
    assert cfg.data.synthetic_train == plain.data.synthetic_train != 192
    assert cfg.train.steps_per_epoch == plain.train.steps_per_epoch


def test_resume_command_names_raysearch_and_the_storage_only_when_not_default(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSEARCH_STORAGE", str(tmp_path / "default"))
    space = load_space("l2")
    assert resume_command(space, f"{tmp_path}/default/l2-1") == "python -m raysearch.tune l2 --resume --name l2-1"
    assert resume_command(space, f"{tmp_path}/other/l2-1") == (
        f"python -m raysearch.tune l2 --resume --name l2-1 --storage {tmp_path}/other")


# ---------------------------------------------------------------- progress


def test_eta_from_the_trial_epoch_budget():
    # 4 trials x 10 epochs; one stopped early at 2 (its share is spent), one at 5, one at 3, one not started.
    budget = trial_epoch_budget([(2, True), (5, False), (3, False)], num_samples=4, max_epochs=10)
    assert (budget.total, budget.done, budget.measured) == (40, 18, 10)
    # 10 epochs trained in 100 s since the start (none before): 22 epochs left take 220 s.
    assert eta_seconds(budget, trained_at_start=0, elapsed_s=100) == pytest.approx(220)
    # A resumed search: only the epochs trained since this process started set the pace.
    assert eta_seconds(budget, trained_at_start=8, elapsed_s=100) == pytest.approx(1100)
    assert eta_seconds(budget, trained_at_start=10, elapsed_s=100) is None


def test_progress_columns_are_short_but_unambiguous():
    assert short_names(["optim.generator_lr", "critic.kernel_size", "generator.kernel_size"]) == {
        "optim.generator_lr": "generator_lr", "critic.kernel_size": "critic.kernel_size",
        "generator.kernel_size": "generator.kernel_size"}


def test_rays_interrupt_hint_is_replaced_and_remembered():
    quiet = QuietRayLogs()
    record = logging.LogRecord("ray.tune.tune", logging.WARNING, "", 0,
                               "Experiment has been interrupted, but the most recent state was saved.\n"
                               "Resume experiment with: Tuner.restore(path=...)", None, None)
    assert not quiet.filter(record) and quiet.interrupted
    other = logging.LogRecord("ray.tune.tune", logging.WARNING, "", 0, "something a user can act on", None, None)
    assert quiet.filter(other)


# ---------------------------------------------------------------- HParams


def test_hparams_mark_the_searched_parameters_as_differing_and_list_every_trial(tmp_path):
    root = tmp_path / "tensorboard"
    columns = [HParamColumn("optim.generator_lr", "loguniform", low=1e-5, high=1e-3),
               HParamColumn("objective.name", "choice", choices=("wgan", "hinge"))]
    write_experiment_hparams(str(root), columns, ["score/val/swd", "val/swd"])
    cfg = load_config("l2", TINY + ["train.epochs=1"])
    run_trial(cfg, lambda metrics, checkpoint: None, logdir=root / "finished_trial")
    stopped = TrialSummary(root / "stopped_trial")  # killed after its first epoch: no session end
    stopped.session_start({"optim": {"generator_lr": 1e-4}, "objective": {"name": "hinge"}})
    stopped.scalars({"val/swd": 120.0}, 1)
    stopped.commit()

    board = EventMultiplexer()
    board.AddRunsFromDirectory(str(root))
    board.Reload()
    content = board.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME)
    experiments = [run for run, tags in content.items() if hparams_metadata.EXPERIMENT_TAG in tags]
    assert experiments == ["."], "one experiment-level summary, at the root"
    experiment = hparams_metadata.parse_experiment_plugin_data(content["."][hparams_metadata.EXPERIMENT_TAG])
    infos = {info.name: info for info in experiment.hparam_infos}
    assert set(infos) == {"optim.generator_lr", "objective.name"}
    assert all(info.differs for info in infos.values())
    assert infos["optim.generator_lr"].domain_interval.max_value == 1e-3
    assert [v.string_value for v in infos["objective.name"].domain_discrete.values] == ["wgan", "hinge"]
    assert [m.name.tag for m in experiment.metric_infos] == ["score/val/swd", "val/swd"]
    for run in ("finished_trial", "stopped_trial"):
        start = hparams_metadata.parse_session_start_info_plugin_data(content[run][hparams_metadata.SESSION_START_INFO_TAG])
        assert "optim.generator_lr" in start.hparams, run
    assert hparams_metadata.SESSION_END_INFO_TAG in content["finished_trial"]
