"""`python -m raysearch.tune`: spaces, errors, the seeded searcher, and real searches on a local Ray."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from raysearch.checkpoint import load_checkpoint
from raysearch.config import config_to_dict, flatten, list_spaces, load_config
from raysearch.errors import ConfigError
from raysearch.saved_state import check_resumable
from raysearch.spaces import load_space
from raysearch.storage import Storage
from raysearch.summaries import BASELINE_RUN_PREFIX
from raysearch.runtime import make_searcher
from raysearch.tune import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("space", list_spaces())
def test_dry_run_prints_resolved_base_and_search(space, capsys):
    assert main([space, "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["base"]["train"]["epochs"] >= 1
    assert printed["search"], "every shipped space searches something"
    assert printed["objectives"] and all(metric.startswith("val/") and mode in ("min", "max")
                                         for metric, mode in printed["objectives"].items())
    # The printed base is a complete, valid config.
    load_space(space)


def test_gan_spaces_optimise_a_realism_aware_metric_under_the_fidelity_floor():
    # The trade-off spaces answer with the front of fidelity against the realism proxy; seed 001's own model
    # keeps its write-up's metric. Every one keeps the GAN floor: PSNR at most 1 dB under the best fill.
    for space in ("dcgan", "wgan", "wgan_gp", "realism"):
        loaded = load_space(space)
        assert [(o.metric, o.mode) for o in loaded.objectives] == [("val/psnr", "max"), ("val/swd_band", "min")]
        assert loaded.tune.scheduler == "mo_asha"
    assert load_space("seed001_unet_wgan").metric == "val/swd"
    for space in ("dcgan", "wgan", "wgan_gp", "realism", "seed001_unet_wgan"):
        assert [c.describe() for c in load_space(space).constraints] == ["val/psnr >= best fill - 1"]


def test_the_spaces_together_search_what_the_mission_names():
    searched = {p.key for space in list_spaces() for p in load_space(space).params}
    for key in ("optim.generator_lr", "optim.critic_lr", "train.critic_steps", "train.generator_steps",
                "objective.clip", "objective.adv_weight", "objective.l2_weight", "generator.kernel_size",
                "objective.label_smoothing", "objective.instance_noise", "captions.encoder",
                "generator.output_activation"):
        assert key in searched, key


@pytest.mark.parametrize("preset, checks", [
    ("seed000_cnn", {"generator.name": "cnn", "generator.blocks_per_stage": 2, "generator.code_size": 500,
                     "optim.generator_lr": 0.005, "objective.name": "l2"}),
    ("seed001_unet_wgan", {"generator.name": "unet", "generator.kernel_size": 5, "generator.max_width": 256,
                           "objective.name": "wgan", "objective.l2_weight": 1e-5, "critic.depth": 4}),
])
def test_seed_presets_hold_each_write_up_best_configuration(preset, checks):
    cfg = load_config(preset)
    for dotted, expected in checks.items():
        section, key = dotted.split(".")
        assert getattr(getattr(cfg, section), key) == pytest.approx(expected), dotted


def _run_main(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_unknown_space_is_one_clear_error(capsys):
    code, err = _run_main(["wgna", "--dry-run"], capsys)
    assert code == 2 and len(err) == 1 and "wgan" in err[0] and err[0].startswith("error:")


def test_bad_set_is_one_clear_error(capsys):
    code, err = _run_main(["wgan", "--set", "objective.clipp=0.1", "--dry-run"], capsys)
    assert code == 2 and len(err) == 1 and "objective.clipp" in err[0] and "clip" in err[0]


def test_bad_yaml_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text("base: {train: {epochs: 2}\nsearch: [\n")
    code, err = _run_main([str(path), "--dry-run"], capsys)
    assert code == 2 and len(err) == 1 and str(path) in err[0] and "line" in err[0]


@pytest.mark.parametrize("search, words", [
    ({"optim.generatr_lr": {"loguniform": [1e-5, 1e-3]}}, ["search.optim.generatr_lr", "generator_lr"]),
    ({"optim.generator_lr": {"loguniform": [0.0, 1e-3]}}, ["low > 0"]),
    ({"optim.generator_lr": {"uniform": [1e-3, 1e-5]}}, ["low must be below high"]),
    ({"train.critic_steps": {"int": [1, 50]}}, ["train.critic_steps", "1 to 20"]),
    ({"generator.kernel_size": {"choice": [3, 4]}}, ["generator.kernel_size", "odd"]),
    ({"objective.clip": {"normal": [0, 1]}}, ["exactly one of"]),
    ({"objective.clip": {"uniform": [0.01, 0.1], "when": {"objective.name": "wgan"}},
      "objective.name": {"choice": ["wgan", "hinge"]}}, ["searched later"]),
])
def test_bad_search_sections_fail_at_load(tmp_path, search, words):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"base": {"objective": {"name": "wgan", "adv_weight": 0.1}}, "search": search},
                                   sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_space(str(path))
    assert str(info.value).startswith(str(path))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("section, words", [
    ({"objectives": {"val/psnr": "max", "val/fid": "min"}}, ["objectives.val/fid", "not reported", "val/swd_band"]),
    ({"objectives": {"val/psnr": "max", "val/swd_band": "max"}}, ["objectives.val/swd_band", "lower is better",
                                                                   "use min"]),
    ({"objectives": {"val/psnr": "max", "val/swd": "min"}, "metric": "val/psnr"}, ["not both"]),
    ({"objectives": {}}, ["objectives", "mapping"]),
    ({"objectives": {"val/psnr": "max", "val/swd": "min"}, "tune": {"scheduler": "asha"}},
     ["tune.scheduler", "2 objectives", "mo_asha"]),
    ({"metric": "val/swd", "tune": {"scheduler": "mo_asha"}}, ["tune.scheduler", "mo_asha", "one"]),
    ({"constraints": {"val/sharpness": {"at_least": 1.0}}}, ["constraints.val/sharpness", "not reported"]),
    ({"constraints": {"val/psnr": {"at_least": 1.0, "at_most": 2.0}}}, ["constraints.val/psnr", "exactly one"]),
    ({"constraints": {"val/psnr": {"above": 1.0}}}, ["constraints.val/psnr", "at_least"]),
    ({"constraints": {"val/psnr": {"at_least": "x"}}}, ["constraints.val/psnr.at_least", "finite number"]),
    ({"constraints": {"val/psnr": {"at_least": -1.0, "relative_to": "best_trial"}}}, ["relative_to", "best_fill"]),
])
def test_bad_objectives_and_constraints_are_one_line_before_ray(tmp_path, capsys, section, words):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"base": {"objective": {"name": "wgan", "adv_weight": 0.1}}, **section},
                                   sort_keys=False))
    code, err = _run_main([str(path), "--dry-run"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {path}: "), err
    for word in words:
        assert word in err[0], (word, err[0])


def test_a_space_with_several_objectives_searches_them_with_mo_asha_by_default(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base: {}\nobjectives: {val/psnr: max, val/ssim: max}\nconstraints: {}\n")
    space = load_space(str(path))
    assert space.multi_objective and space.tune.scheduler == "mo_asha" and space.constraints == ()
    assert (space.metric, space.mode) == ("val/psnr", "max")  # the first objective is the table's primary one


def test_unknown_tune_setting_and_metric_fail_at_load(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base: {}\ntune: {num_sample: 4}\n")
    with pytest.raises(ConfigError, match="tune.num_sample.*num_samples"):
        load_space(str(path))
    path.write_text("base: {}\nmetric: val/fid\n")
    with pytest.raises(ConfigError, match="val/fid"):
        load_space(str(path))


def _suggestions(space, seed, count):
    import dataclasses

    settings = dataclasses.replace(space.tune, seed=seed, num_samples=count)
    if settings.scheduler in ("pbt", "pb2"):  # no searcher beside PBT: what trials get is its starting population
        from raysearch.population import starting_population

        return starting_population(space, settings)
    searcher = make_searcher(space, settings, max_concurrent=count)
    return [searcher.suggest(f"trial_{i}") for i in range(count)]


def test_seeded_searcher_gives_the_same_suggestions_and_starts_from_the_base():
    space = load_space("wgan")
    first, again, other = _suggestions(space, 0, 6), _suggestions(space, 0, 6), _suggestions(space, 1, 6)
    assert first == again
    assert first[1:] != other[1:]
    assert first[0] == space.base_point(), "the base config is evaluated first"


@pytest.mark.parametrize("space_name", list_spaces())
def test_every_sampled_configuration_of_a_shipped_space_is_valid(space_name):
    # An invalid combination would surface only as failed trials in the middle of a search.
    space = load_space(space_name)
    suggestions = _suggestions(space, 0, 25)
    for params in suggestions:
        applied = flatten(config_to_dict(space.trial_config(params)))
        assert {key: applied[key] for key in params} == params  # every sampled value reaches the trial's config
    if space.params:
        assert len({repr(sorted(p.items())) for p in suggestions}) > 1  # and the searcher does search


def test_conditional_parameters_apply_only_when_their_condition_holds(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({
        "base": {"objective": {"name": "wgan", "adv_weight": 0.1}},
        "search": {
            "objective.name": {"choice": ["wgan", "hinge"]},
            "objective.clip": {"loguniform": [0.005, 0.1], "when": {"objective.name": "wgan"}},
        },
    }, sort_keys=False))
    suggestions = _suggestions(load_space(str(path)), 3, 12)
    assert {s["objective.name"] for s in suggestions} == {"wgan", "hinge"}
    for params in suggestions:
        assert ("objective.clip" in params) == (params["objective.name"] == "wgan")


# ---------------------------------------------------------------- on a local Ray


def _tune(args, storage, **kwargs):
    """Run the command in its own process (and session, so a test can kill its whole group)."""
    command = [sys.executable, "-m", "raysearch.tune", *args, "--address", "local", "--storage", str(storage)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def _trial_dirs(experiment: Path):
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").exists())


def _finished_trials(experiment: Path, epochs: int) -> set[str]:
    """Trials whose result.json already holds their last epoch."""
    done = set()
    for trial in _trial_dirs(experiment) if experiment.exists() else []:
        lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
        if any(json.loads(line).get("epoch") == epochs for line in lines if line.strip()):
            done.add(trial.name)
    return done


@pytest.mark.slow
@pytest.mark.ray  # Ray: one at a time (conftest)
def test_resume_after_the_driver_is_killed_keeps_finished_trials_and_answers_with_the_front(tmp_path):
    # wgan searches two objectives (PSNR against the band-keeping SWD): its study, its front and best_config
    # must survive the driver's SIGKILL as the finished trials do.
    args = ["wgan", "--smoke-test", "--num-samples", "3", "--name", "killed", "--set", "train.steps_per_epoch=3",
            "--set", "train.critic_steps=1"]
    experiment = tmp_path / "killed"
    process = _tune(args + ["--max-epochs", "2"], tmp_path)
    deadline = time.monotonic() + 300
    while not _finished_trials(experiment, 2) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(1)
    finished_before = _finished_trials(experiment, 2)
    assert finished_before, "no trial finished in time"
    os.killpg(process.pid, signal.SIGKILL)  # the driver and the local Ray it started
    process.wait()
    results_before = {name: (experiment / name / "result.json").read_text() for name in finished_before}

    resumed = _tune(["wgan", "--resume", "--name", "killed"], tmp_path)
    out, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err[-3000:]
    assert len(_trial_dirs(experiment)) == 3
    for name, before in results_before.items():
        # A finished trial is kept as it was, not run again.
        assert (experiment / name / "result.json").read_text() == before
    rows = [line.split() for line in out.splitlines() if line.startswith(("1 ", "2 ", "3 ", "4 "))]
    assert len(rows) == 3 and all(row[-1] in ("finished", "stopped") for row in rows), out[-3000:]

    # The answer is the front: its knee is best_config.yaml, each front trial has a config in front/.
    assert "Front of val/psnr (max), val/swd_band (min)" in out and "Hypervolume" in out, out[-3000:]
    knee = next(row[2] for row in rows if row[1] == "knee")
    on_front = sorted(row[2] for row in rows if row[1] in ("knee", "yes"))
    assert sorted(p.stem for p in (experiment / "front").glob("*.yaml")) == on_front
    assert load_config(str(experiment / "best_config.yaml")) == load_config(str(experiment / "front" / f"{knee}.yaml"))
    # One Optuna study across the kill: every Tune trial in it once, with its honest end.
    from optuna.trial import TrialState

    from raysearch.study import open_study

    study = open_study(experiment / "optuna.journal", "killed")
    assert study.metric_names == ["score/val/psnr", "score/val/swd_band"]
    ended = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    tune_ids = [t.user_attrs["ray_trial_id"] for t in ended]
    assert len(tune_ids) == len(set(tune_ids)) == 3
    assert {t.user_attrs["ray_trial_id"] for t in ended if t.state == TrialState.COMPLETE} == {
        row[2].rsplit("_", 1)[-1] for row in rows if row[-1] == "finished"}


@pytest.mark.slow
@pytest.mark.ray  # Ray: one at a time (conftest)
def test_a_stopped_search_resumes_with_its_printed_command_and_ends_with_the_whole_report(tmp_path):
    # One search as a user lives it (one search for all of this: each costs a Ray start and the trials):
    # a second driver on it is refused while it runs; SIGTERM (what `kill`, Kubernetes, Slurm and `ray job
    # stop` send; test_faults shows it is handed to Ctrl-C's handler, so this is Ctrl-C's path through Tune
    # too) stops it with the resume command; that command finishes it, and the end is the whole report: the
    # table, best_config.yaml, every trial's parameters in its training run, TensorBoard, and analyze.
    args = ["l2", "--smoke-test", "--num-samples", "4", "--name", "stopped", "--max-epochs", "3",
            "--set", "train.steps_per_epoch=3"]
    experiment = tmp_path / "stopped"
    process = _tune(args, tmp_path)

    def wait_for(epochs):
        deadline = time.monotonic() + 300
        while not _finished_trials(experiment, epochs) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.5)
        assert _finished_trials(experiment, epochs), f"no trial reached epoch {epochs} in time"

    wait_for(1)  # trials are training: a second driver now (its start takes seconds on a busy machine)
    second = subprocess.run([sys.executable, "-m", "raysearch.tune", "l2", "--resume", "--name", "stopped",
                             "--storage", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"pid {process.pid}" in second.stderr and "is running this experiment" in second.stderr
    assert process.poll() is None  # the first goes on

    wait_for(3)  # a trial finished, others still to train (4 trials, two at a time): SIGTERM now
    process.send_signal(signal.SIGTERM)  # the driver only
    out, err = process.communicate(timeout=200)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    command = f"python -m raysearch.tune l2 --resume --name stopped --storage {tmp_path}"
    assert "SIGTERM: stopping the search as Ctrl-C does (Tune saves the experiment's state); continue it with: " \
           f"{command}" in err
    assert command in out and "Traceback" not in err, out[-3000:]
    statuses = [line.split()[-1] for line in out.splitlines() if line[:2] in ("1 ", "2 ", "3 ", "4 ")]
    assert "interrupted" in statuses and "finished" in statuses, out[-3000:]
    # The progress table: the space's metric, its score and the search's budget; Ray's per-epoch lines and
    # its Tuner.restore hint are not printed without --verbose. (Tune shows a metric column once some trial
    # has reported it: the last table has them.)
    table = [line for line in out.splitlines() if line.startswith("| Trial name")][-1]
    assert "psnr" in table and "score" in table and "epoch" in table
    assert "trial-epochs (4 trials x 3 epochs" in out
    check_resumable(Storage(str(experiment)))  # Tune's state saved whole

    resumed = _tune(command.split()[3:-2], tmp_path)  # the printed command (its --storage is added by _tune)
    resumed_out, resumed_err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, resumed_err[-3000:]
    statuses = [line.split()[-1] for line in resumed_out.splitlines() if line[:2] in ("1 ", "2 ", "3 ", "4 ")]
    assert len(statuses) == 4 and set(statuses) <= {"finished", "stopped"}, resumed_out[-3000:]
    assert "--resume" not in resumed_out
    assert "ranked by val/psnr" in resumed_out and "tensorboard --logdir" in resumed_out
    assert "classical:harmonic" in resumed_out and "baseline" in resumed_out  # the fills as rows of the table
    for noise in ("Reporting training result", "Checkpoint successfully created", "Tuner.restore"):
        assert noise not in out + err + resumed_out + resumed_err, noise

    # best_config.yaml runs with raysearch.train --config: its trial's epochs, without the smoke-test data.
    best = load_config(str(experiment / "best_config.yaml"))
    assert best.objective.name == "l2"
    assert best.train.epochs == 3 and best.data.synthetic_train == load_config("l2").data.synthetic_train

    # analyze reads the real experiment (Tune's state through ExperimentAnalysis): the search's own statuses.
    from raysearch.experiment import open_experiment

    statuses = sorted(t.status for t in open_experiment(str(experiment)).trials)
    assert len(statuses) == 4 and set(statuses) <= {"finished", "stopped"}, statuses

    # Every trial's sampled parameters reached its training run.
    trials = _trial_dirs(experiment)
    assert len(trials) == 4
    for trial in trials:
        params = json.loads((trial / "params.json").read_text())
        checkpoints = sorted(trial.glob("checkpoint_*"))  # Tune keeps a one-process trial's checkpoints
        trained = load_checkpoint(checkpoints[-1])["config"]
        for dotted, value in params.items():
            section, key = dotted.split(".")
            assert trained[section][key] == value, dotted

    # TensorBoard's own reader finds every trial's scalars, preview grid and hparams.
    board = EventMultiplexer()
    board.AddRunsFromDirectory(str(experiment / "tensorboard"))
    board.Reload()
    runs = board.Runs()
    hparams = board.PluginRunToTagToContent("hparams")
    trial_runs = [run for run in runs if run != "." and not run.startswith(BASELINE_RUN_PREFIX)]
    assert len(trial_runs) == 4
    # Beside them, the classical fills as reference runs: flat lines over the search's epochs.
    from raysearch.baselines import BASELINE_NAMES

    assert sorted(run for run in runs if run.startswith(BASELINE_RUN_PREFIX)) == sorted(
        f"{BASELINE_RUN_PREFIX}{name}" for name in BASELINE_NAMES)
    flat = board.Scalars(f"{BASELINE_RUN_PREFIX}harmonic", "score/val/psnr")
    assert [s.step for s in flat] == [1, 2, 3] and len({s.value for s in flat}) == 1
    for run in trial_runs:
        assert "val/psnr" in runs[run]["scalars"] and "score/val/psnr" in runs[run]["scalars"], run
        assert runs[run]["images"], run
        assert "_hparams_/session_start_info" in hparams[run], run
    # One experiment-level HParams summary at the root: the searched parameters, each marked as differing.
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    experiment_info = hparams_metadata.parse_experiment_plugin_data(hparams["."]["_hparams_/experiment"])
    searched = {p.key for p in load_space("l2").params}
    assert {info.name for info in experiment_info.hparam_infos} == searched
    assert all(info.differs for info in experiment_info.hparam_infos)

    # analyze on the finished experiment: the table, the importances and the grid of fills.
    png = tmp_path / "grid.png"
    analyzed = subprocess.run([sys.executable, "-m", "raysearch.analyze", str(experiment), "--grid", str(png)],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert "rank" in analyzed.stdout and "l2_" in analyzed.stdout
    assert "Parameter importances for val/psnr" in analyzed.stdout
    assert png.is_file() and Image.open(png).size[1] > 2 * 64


# A trial the scheduler stops part-way, and the next trial in its actor: test_runtime's reused-actor test.
