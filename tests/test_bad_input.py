"""Every bad input a new user can give: one line `error: ...` naming the file, key or value, exit status 2,
no traceback, Ray never started, nothing already on disk changed.

The commands run in-process (`main([...])`) with `runtime.start_ray` replaced by a function that fails the
test, so none of these tests starts Ray; a few run as real subprocesses to prove the behaviour end to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import raysearch.runtime as runtime
from raysearch import analyze, cluster_config, train, tune
from raysearch.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from raysearch.config import load_config
from raysearch.data import __main__ as data_cli
from raysearch.errors import CheckpointError, ConfigError
from raysearch.fill import validation_fills
from raysearch.spaces import load_space
from tests.conftest import SMALL_DATA

REPO = Path(__file__).resolve().parent.parent
BINARY = bytes(range(256)) * 4  # not UTF-8 (0x80 and up), with NULs: what a user gets by naming the wrong file


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    """Any of these commands starting (or attaching to) Ray is a failure: the error must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started before the error")

    monkeypatch.setattr(runtime, "start_ray", refuse)
    monkeypatch.setattr(runtime, "train_run", refuse)  # a one-worker run trains in-process, without Ray
    monkeypatch.setattr(tune, "run_search", refuse)


def call(main, argv: list[str]) -> int:
    """Exit status of a CLI's main, whether it returns it or argparse raises SystemExit."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code


def assert_one_line(capsys, code: int, *words: str) -> str:
    """Exit status 2 and exactly one non-empty stderr line, `error: ...`, holding every word."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("error: "), line
    assert "Traceback" not in err
    for word in words:
        assert word in line, (word, line)
    return line


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- search spaces that can sample invalid configs

GAN = "base:\n  objective: {name: %s, adv_weight: 0.1}\n"
SPACES = {
    "norm_with_wgan_gp": (GAN % "wgan-gp" + "  critic: {norm: layer}\nsearch:\n  critic.norm: {choice: [layer, batch]}\n"
                          "metric: val/swd\n", ["critic.norm='batch'", "wgan-gp"]),
    "clip_without_wgan": (GAN % "gan" + "search:\n  generator.output_activation: {choice: [tanh, clip]}\nmetric: val/swd\n",
                          ["generator.output_activation='clip'", "needs objective.name=wgan"]),
    "clip_with_searched_objective": (GAN % "wgan" + "search:\n  objective.name: {choice: [wgan, hinge]}\n"
                                     "  generator.output_activation: {choice: [tanh, clip]}\nmetric: val/swd\n",
                                     ["objective.name='hinge'", "generator.output_activation='clip'"]),
    "even_kernel_size": ("base: {}\nsearch:\n  generator.kernel_size: {int: [3, 7]}\n",
                         ["search.generator.kernel_size", "value 4", "odd"]),
    "both_step_ratios": (GAN % "wgan" + "search:\n  train.critic_steps: {int: [1, 5]}\n"
                         "  train.generator_steps: {int: [1, 3]}\nmetric: val/swd\n",
                         ["train.critic_steps=2", "train.generator_steps=2", "must be 1"]),
    "conditional_value_out_of_range": ("base: {}\nsearch:\n  captions.encoder: {choice: [none, bow]}\n"
                                       "  captions.num_captions: {int: [1, 6], when: {captions.encoder: bow}}\n",
                                       ["captions.num_captions", "value 6"]),
    "gpu_fraction_2": ("base: {}\ntune:\n  resources: {gpu_fraction: 2.0}\n", ["tune.resources.gpu_fraction", "(0, 1]"]),
    "gpu_fraction_1_5": ("base: {}\ntune:\n  resources: {gpu_fraction: 1.5}\n", ["gpu_fraction", "1.5"]),
    "infinite_base_float": ("base:\n  objective: {l2_weight: .inf}\n", ["objective.l2_weight", "finite", "inf"]),
    "nan_base_float": ("base:\n  optim: {generator_lr: .nan}\n", ["optim.generator_lr", "finite", "nan"]),
    "nan_tune_float": ("base: {}\ntune:\n  resources: {cpus: .nan}\n", ["tune.resources.cpus", "finite"]),
    "infinite_choice": ("base: {}\nsearch:\n  objective.l2_weight: {choice: [1.0, .inf]}\n",
                        ["search.objective.l2_weight", "finite"]),
    "infinite_bound": ("base: {}\nsearch:\n  objective.l2_weight: {uniform: [0.5, .inf]}\n",
                       ["search.objective.l2_weight", "finite"]),
    "when_value_not_allowed": (GAN % "wgan" + "search:\n  objective.clip: {uniform: [0.01, 0.1], "
                               "when: {objective.name: wgan2}}\nmetric: val/swd\n",
                               ["search.objective.clip.when.objective.name", "'wgan2'", "did you mean 'wgan'"]),
    "when_never_matches_base": (GAN % "gan" + "search:\n  objective.clip: {uniform: [0.01, 0.1], "
                                "when: {objective.name: wgan}}\nmetric: val/swd\n",
                                ["search.objective.clip.when", "never 'wgan'"]),
    "when_never_matches_choices": (GAN % "gan" + "search:\n  objective.name: {choice: [gan, nsgan]}\n"
                                   "  objective.clip: {uniform: [0.01, 0.1], when: {objective.name: [gan, hinge]}}\n"
                                   "metric: val/swd\n", ["search.objective.clip.when", "never 'hinge'"]),
    "duplicate_key": ("base:\n  objective:\n    name: l2\n    l2_weight: 1.0\n    name: wgan\n",
                      ["line 5", "'name' given twice", "first on line 3"]),
    "duplicate_search_key": ("base: {}\nsearch:\n  optim.generator_lr: {loguniform: [1.0e-4, 1.0e-3]}\n"
                             "  optim.generator_lr: {loguniform: [1.0e-5, 1.0e-3]}\n",
                             ["line 4", "'optim.generator_lr' given twice"]),
    "metric_direction": ("base: {}\nmetric: val/mse\nmode: max\n", ["mode: max", "val/mse", "use mode: min"]),
    "metric_direction_max": ("base: {}\nmetric: val/ssim\nmode: min\n", ["mode: min", "val/ssim", "use mode: max"]),
    "base_as_list": ("base: [data, train]\n", ["base: expected a mapping"]),
}


@pytest.mark.parametrize("case", sorted(SPACES))
def test_a_space_that_can_sample_an_invalid_config_fails_at_load(tmp_path, capsys, case):
    text, words = SPACES[case]
    space = write(tmp_path / f"{case}.yaml", text)
    line = assert_one_line(capsys, call(tune.main, [space, "--smoke-test"]), str(space), *words)
    assert "\n" not in line


def test_the_pairwise_check_sees_a_condition_and_its_parameter_together(tmp_path):
    # bias injection is only sampled with an encoder; the invalid value hides behind the condition.
    space = write(tmp_path / "s.yaml", "base: {}\nsearch:\n  captions.encoder: {choice: [none, bow]}\n"
                  "  captions.code_size: {choice: [50, 0], when: {captions.encoder: bow}}\n")
    with pytest.raises(ConfigError, match="captions.code_size"):
        load_space(str(space))


def test_an_override_cannot_make_a_searched_value_invalid_unnoticed(capsys):
    # wgan.yaml searches output_activation over [tanh, clip]; clip needs wgan, so --set objective.name=hinge
    # makes a trial possible that cannot train.
    code = call(tune.main, ["wgan", "--set", "objective.name=hinge", "--dry-run"])
    assert_one_line(capsys, code, "wgan.yaml", "generator.output_activation='clip'", "hinge")


def test_an_infinite_set_value_is_refused(capsys):
    assert_one_line(capsys, call(train.main, ["l2", "--set", "objective.l2_weight=.inf", "--dry-run"]),
                    "objective.l2_weight", "finite")


# ---------------------------------------------------------------- files that are not YAML text


def test_a_binary_file_as_yaml_is_one_line_everywhere(tmp_path, capsys):
    binary = tmp_path / "photo.yaml"
    binary.write_bytes(BINARY)
    assert_one_line(capsys, call(tune.main, [binary]), str(binary), "not a text file")
    assert_one_line(capsys, call(train.main, ["--config", binary]), str(binary), "not a text file")
    assert_one_line(capsys, call(cluster_config.main, [binary]), str(binary), "not a text file")


def test_a_duplicate_key_in_a_cluster_file_names_the_line(tmp_path, capsys):
    cluster = write(tmp_path / "cluster.yaml", "cluster_name: a\nmax_workers: 2\ncluster_name: b\n")
    assert_one_line(capsys, call(cluster_config.main, [cluster]), str(cluster), "line 3", "'cluster_name' given twice")


# ---------------------------------------------------------------- what must be checked before Ray starts


def test_an_unknown_storage_scheme_fails_before_ray(capsys):
    assert_one_line(capsys, call(tune.main, ["l2", "--smoke-test", "--storage", "nosuch://bucket/x"]),
                    "--storage nosuch://bucket/x", "s3://")


@pytest.mark.parametrize("under", [False, True])
def test_a_storage_that_is_a_file_fails_before_ray(tmp_path, capsys, under):
    afile = write(tmp_path / "notes.txt", "mine")
    storage = afile / "tune" if under else afile
    assert_one_line(capsys, call(tune.main, ["l2", "--smoke-test", "--storage", storage]), str(afile), "file")
    assert afile.read_text() == "mine"


def test_train_logdir_that_is_a_file_fails_before_ray(tmp_path, capsys):
    afile = write(tmp_path / "notes.txt", "mine")
    assert_one_line(capsys, call(train.main, ["l2", "--logdir", afile]), "--logdir", str(afile), "is a file")
    assert afile.read_text() == "mine"


def test_resume_with_a_storage_that_is_a_file(tmp_path, capsys):
    afile = write(tmp_path / "notes.txt", "mine")
    assert_one_line(capsys, call(tune.main, ["l2", "--resume", "--storage", afile]), str(afile), "is a file")
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("command", ["tune", "train"])
def test_cuda_without_a_gpu_fails_before_a_local_ray_starts(monkeypatch, capsys, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    main = tune.main if command == "tune" else train.main
    code = call(main, ["l2", "--set", "train.device=cuda", "--address", "local"])
    assert_one_line(capsys, code, "train.device=cuda", "no GPU", "allowed")


# The search computes the classical fills of its dataset before it attaches: the small one, so seconds.
@pytest.mark.parametrize("command", ["tune", "train"])
def test_cuda_on_a_cluster_without_gpus_yet_notes_the_autoscaler_and_goes_on(tmp_path, monkeypatch, capsys, command):
    # cluster.yaml's GPU workers scale from 0: an idle cluster has no GPU until trials ask for one.
    import ray

    attached, built = [], []
    monkeypatch.setattr(runtime, "start_ray", lambda address, **kwargs: attached.append(address))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    monkeypatch.setattr(ray, "get_runtime_context", lambda: type("Context", (), {"gcs_address": "10.0.0.1:6379"})())

    class Stop(Exception):
        pass

    def run_instead(*args, **kwargs):
        built.append(True)
        raise Stop

    monkeypatch.setattr(tune, "run_search", run_instead)
    monkeypatch.setattr(runtime, "train_run", run_instead)
    # A one-worker `train` runs in this process, whatever the address: only its DDP runs go to the cluster.
    main, where = (tune.main, ["--storage"]) if command == "tune" else (train.main, ["--workers", "2", "--logdir"])
    with pytest.raises(Stop):
        main(["l2", "--set", "train.device=cuda", *[f for o in SMALL_DATA for f in ("--set", o)],
              "--address", "10.0.0.1:6379", *where, str(tmp_path / "out")])
    assert attached == ["10.0.0.1:6379"] and built == [True]
    note = capsys.readouterr().err
    assert "train.device=cuda" in note and "10.0.0.1:6379" in note and "autoscaler" in note


# ---------------------------------------------------------------- --resume with a broken experiment record

RECORDS = {
    "invalid_yaml": ("space: [l2\n", ["not valid YAML"]),
    "missing_keys": ("space: l2\n", ["missing overrides, tune"]),
    "not_a_mapping": ("- l2\n", ["missing space, overrides, tune"]),
    "bad_tune": ("space: l2\noverrides: []\ntune: {num_samples: 0}\n", ["tune.num_samples"]),
    "bad_overrides": ("space: l2\noverrides: objective.l2_weight=2\ntune: {}\n", ["overrides: expected a list"]),
    "space_gone": ("space: /nowhere/gone.yaml\noverrides: []\ntune: {}\n", ["/nowhere/gone.yaml", "no such file"]),
    "binary": (None, ["raysearch_experiment.yaml"]),
}


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_resume_with_a_broken_record_names_the_record_and_changes_nothing(tmp_path, capsys, case):
    text, words = RECORDS[case]
    experiment = tmp_path / "runs" / "l2-20260101-000000"
    experiment.mkdir(parents=True)
    record = experiment / tune.EXPERIMENT_FILE
    if text is None:
        record.write_bytes(BINARY)
    else:
        record.write_text(text)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code = call(tune.main, ["l2", "--resume", "--storage", tmp_path / "runs"])
    assert_one_line(capsys, code, str(record), *words)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("case", ["bad_tune"])
def test_analyze_of_an_experiment_with_a_broken_record_names_the_record(tmp_path, capsys, case):
    text, words = RECORDS[case]
    experiment = tmp_path / "l2-20260101-000000"
    experiment.mkdir()
    record = experiment / tune.EXPERIMENT_FILE
    record.write_text(text + "metric: val/psnr\nmode: max\n")
    assert_one_line(capsys, call(analyze.main, [experiment]), str(record), *words)


def test_analyze_grid_refuses_a_broken_checkpoint_before_it_makes_any_data(tmp_path, capsys, monkeypatch):
    # The experiment's data is the default synthetic set, not yet generated: a refused checkpoint must say so
    # before 2,000 images are drawn for nothing.
    from raysearch.data import cache
    from tests.fake_tune import FakeTune, params

    experiment = tmp_path / "l2-test"
    fake = FakeTune(experiment, num_samples=1)
    fake.train("aaaa0001", params(1e-3), epochs=1)
    (checkpoint,) = experiment.glob("l2_aaaa0001/checkpoint_*")
    state = load_checkpoint(checkpoint)
    state["generator"] = {key: value[:1] if value.dim() else value  # shapes that do not fit
                          for key, value in state["generator"].items()}
    save_checkpoint(state, checkpoint)
    capsys.readouterr()  # the fake search's own output
    made = []
    monkeypatch.setattr(cache, "write_synthetic", lambda *a, **k: made.append(a) or pytest.fail("data was made"))
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "empty-cache"))
    code = call(analyze.main, [experiment, "--grid", tmp_path / "grid.png"])
    assert_one_line(capsys, code, str(checkpoint), "does not fit")
    assert made == [] and not (tmp_path / "grid.png").exists()


# ---------------------------------------------------------------- analyze's output files


def test_analyze_csv_that_is_a_directory(tmp_path, capsys):
    assert_one_line(capsys, call(analyze.main, [tmp_path / "exp", "--csv", tmp_path]), "--csv", str(tmp_path),
                    "is a directory")


def test_analyze_grid_under_a_file(tmp_path, capsys):
    afile = write(tmp_path / "notes.txt", "mine")
    assert_one_line(capsys, call(analyze.main, [tmp_path / "exp", "--grid", afile / "grid.png"]), "--grid",
                    f"{afile} is a file")
    assert afile.read_text() == "mine"


# ---------------------------------------------------------------- argparse: one line, not usage + error

ARGPARSE = [
    (tune.main, ["l2", "--num-samples", "-1"], ["--num-samples", "-1"]),
    (tune.main, ["l2", "--max-epochs", "0"], ["--max-epochs", "0"]),
    (tune.main, ["l2", "--num-samples", "abc"], ["--num-samples", "'abc'"]),
    (tune.main, ["l2", "--no-such-flag"], ["--no-such-flag"]),
    (train.main, ["l2", "--config", "best_config.yaml"], ["--config", "one of the two"]),
    (train.main, ["l2", "--epochs", "two"], ["--epochs", "'two'"]),
    (analyze.main, ["runs/x", "--grid", "g.jpg"], ["--grid g.jpg", ".png"]),
    (analyze.main, ["runs/x", "--top", "0"], ["--top", "0"]),
    (analyze.main, ["runs/x", "--images", "100"], ["--images", "1 to 64"]),
    (data_cli.main, [], ["command"]),
    (data_cli.main, ["synthetic"], ["--out"]),
    (data_cli.main, ["prepare", "--coco-root", "x", "--out", "y", "--size", "big"], ["--size", "'big'"]),
    (cluster_config.main, [], ["FILE"]),
]


@pytest.mark.parametrize("main, argv, words", ARGPARSE, ids=[" ".join([m.__module__.split(".")[-1], *a]) for m, a, _ in ARGPARSE])
def test_argument_errors_are_one_line(capsys, main, argv, words):
    assert_one_line(capsys, call(main, argv), *words, "--help")


# ---------------------------------------------------------------- checkpoints that do not fit

SMALL_NETS = ["generator.base_width=8", "generator.max_width=32", "critic.base_width=8", "critic.max_width=32"]


def small_wgan(*extra):
    return load_config("wgan", SMALL_DATA + SMALL_NETS + ["train.epochs=2", "train.steps_per_epoch=1", *extra])


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, dataset_cache):
    """A real one-epoch checkpoint of a small WGAN (generator, critic, optimisers, schedulers)."""
    from raysearch.loop import run_trial

    root = tmp_path_factory.mktemp("good-checkpoint")

    def keep(metrics, directory):
        if directory is not None:
            save_checkpoint(load_checkpoint(directory), root)

    run_trial(small_wgan("train.epochs=1"), keep)
    return load_checkpoint(root)


def _drop(key):
    return lambda state: state.pop(key)


def _reshape_generator(state):
    name = next(k for k, v in state["generator"].items() if v.dim() == 4)
    state["generator"][name] = torch.zeros(3, 3, 1, 1)


def _rename_critic(state):
    state["critic"] = {f"x.{k}": v for k, v in state["critic"].items()}


BAD_STATES = {
    "no_generator": (_drop("generator"), ["no 'generator' entry"]),
    "no_rng": (_drop("rng"), ["no 'rng' entry"]),
    "config_not_a_mapping": (lambda s: s.__setitem__("config", ["wgan"]), ["'config' must be dict", "list"]),
    "generator_shape": (_reshape_generator, ["generator does not fit", "size mismatch"]),
    "critic_keys": (_rename_critic, ["critic does not fit", "Missing key"]),
    "critic_null": (lambda s: s.__setitem__("critic", None), ["'critic' is null"]),
    "optimizer_groups": (lambda s: s["generator_optimizer"].__setitem__("param_groups", []),
                         ["generator optimiser does not fit"]),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_resuming_from_a_checkpoint_that_does_not_fit_is_one_line(tmp_path, good_checkpoint, case):
    from raysearch.loop import run_trial

    spoil, words = BAD_STATES[case]
    state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good_checkpoint.items()}
    state["generator_optimizer"] = {k: (list(v) if isinstance(v, list) else v)
                                  for k, v in good_checkpoint["generator_optimizer"].items()}
    spoil(state)
    torch.save(state, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError) as caught:
        run_trial(small_wgan(), lambda metrics, directory: pytest.fail("trained on a bad checkpoint"),
                  checkpoint=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(tmp_path / STATE_FILE)), message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("case", ["no_generator", "config_not_a_mapping", "generator_shape"])
def test_analyze_grid_on_a_checkpoint_that_does_not_fit_is_one_line(good_checkpoint, case):
    spoil, words = BAD_STATES[case]
    state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good_checkpoint.items()}
    spoil(state)
    where = "s3://bucket/exp/train_abc/epoch_0001/state.pt"
    with pytest.raises(CheckpointError) as caught:
        validation_fills(state, where)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(where), message


def test_analyze_grid_names_the_checkpoint_whose_config_is_invalid(good_checkpoint):
    state = dict(good_checkpoint)
    state["config"] = {**state["config"], "objective": {**state["config"]["objective"], "name": "wgan3"}}
    with pytest.raises(CheckpointError, match=r"^runs/x/state.pt: its config: objective.name: 'wgan3'"):
        validation_fills(state, "runs/x/state.pt")


class Payload:
    """Not a tensor or a plain container: torch's weights-only loader must refuse it, without running it."""


def test_a_refused_pickle_is_one_line_and_never_advises_weights_only_false(tmp_path):
    torch.save({"format_version": 1, "config": Payload()}, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(tmp_path / STATE_FILE)), message
    assert "refused" in message and "Payload" in message
    assert "weights_only=False" not in message and "False" not in message


def test_a_refused_checkpoint_through_resume(tmp_path):
    from raysearch.loop import run_trial

    torch.save({"format_version": 1, "config": Payload()}, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError, match="refused"):
        run_trial(small_wgan(), lambda *a: pytest.fail("trained"), checkpoint=tmp_path)


# ---------------------------------------------------------------- end to end, as a user runs them


@pytest.mark.parametrize("argv, words", [
    (["raysearch.tune", "l2", "--num-samples", "abc"], ["--num-samples", "'abc'"]),
    (["raysearch.tune", "l2", "--storage", "nosuch://bucket/x"], ["nosuch://bucket/x"]),
    (["raysearch.analyze", "runs/x", "--top", "0"], ["--top"]),
    (["raysearch.train", "--config", "{binary}"], ["not a text file"]),
])
def test_subprocess_prints_one_line_and_exits_2(tmp_path, argv, words):
    binary = tmp_path / "b.yaml"
    binary.write_bytes(BINARY)
    argv = [a.replace("{binary}", str(binary)) for a in argv]
    done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0]


def test_the_trials_are_checked_again_with_the_command_lines_budget(monkeypatch, capsys):
    # No rule today depends on train.epochs; one that did (say, pretraining shorter than training) must see
    # the --max-epochs a trial actually gets, not the space's tune.max_epochs.
    import raysearch.spaces as spaces

    real = spaces.check_combinations

    def needs_two_epochs(cfg):
        real(cfg)
        if cfg.train.epochs < 2:
            raise ConfigError(f"train.epochs={cfg.train.epochs}: this rule needs 2")

    monkeypatch.setattr(spaces, "check_combinations", needs_two_epochs)
    assert call(tune.main, ["l2", "--dry-run"]) == 0
    capsys.readouterr()
    assert_one_line(capsys, call(tune.main, ["l2", "--max-epochs", "1", "--dry-run"]), "l2.yaml", "train.epochs=1")


def test_tune_a_baselines_failure_is_one_line_before_ray(tmp_path, monkeypatch, capsys):
    from raysearch.errors import DataError

    def broken(cfg):
        raise DataError("data.path (--data) /x: the val split is unreadable")

    monkeypatch.setattr(tune, "baselines_of", broken)
    code = call(tune.main, ["l2", "--storage", tmp_path / "runs", *SMALL_DATA_FLAGS])
    assert_one_line(capsys, code, "val split is unreadable")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


SMALL_DATA_FLAGS = [flag for item in SMALL_DATA for flag in ("--set", item)]
