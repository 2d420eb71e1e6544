"""An experiment directory written the way tune.py, Tune and Train write it, without running Ray: for the
readers of experiments (analyze, inpaint) to be tested on real files."""

import copy
import dataclasses
import json
import shutil
from pathlib import Path

from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.loop import run_trial
from raysearch.spaces import load_space
from raysearch.tune import remember_experiment
from tests.conftest import SMALL_DATA

SPACE = "l2"  # metric val/psnr, mode max
OVERRIDES = SMALL_DATA + ["generator.max_width=32", "train.steps_per_epoch=2"]
MAX_EPOCHS = 2
KEPT = 2  # Train's CheckpointConfig(num_to_keep=2)


def params(lr, kernel=3, width=16, activation="tanh", decay=1.0):
    return {"optim.generator_lr": lr, "generator.kernel_size": kernel, "generator.base_width": width,
            "generator.output_activation": activation, "optim.lr_decay": decay}


def search_trial(config):
    """Stands in for runtime.search_trial (a trainable taking a config, as Tune registers it); never run here."""


class FakeTune:
    """Writes an experiment directory the way tune.py, Tune and Train do."""

    def __init__(self, root: Path, num_samples: int = 6, space: str = SPACE):
        """`space`: a shipped space's name or a space file (its trials named <its stem>_<trial id>)."""
        self.root = root
        self.space = load_space(space, OVERRIDES)
        self.prefix = self.space.path.stem
        settings = dataclasses.replace(self.space.tune, num_samples=num_samples, max_epochs=MAX_EPOCHS)
        remember_experiment(str(root), self.space, OVERRIDES, settings)
        self.states: list[tuple[str, str, dict]] = []

    def trial_dir(self, trial_id, trial_params):
        path = self.root / f"{self.prefix}_{trial_id}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "params.json").write_text(json.dumps(trial_params, indent=2, sort_keys=True))
        (path / "result.json").touch()
        return path

    def result(self, trial_id, metrics, done=False):
        line = {**metrics, "done": done, "trial_id": trial_id, "training_iteration": metrics.get("epoch", 0)}
        with open(self.root / f"{self.prefix}_{trial_id}" / "result.json", "a") as handle:
            handle.write(json.dumps(line) + "\n")

    def train(self, trial_id, trial_params, epochs, done=True):
        """Train for real (no Ray), recording results, kept checkpoints and TensorBoard as a Tune trial does:
        Tune keeps a one-process trial's checkpoints as <trial dir>/checkpoint_NNNNNN, named in result.json."""
        trial_dir = self.trial_dir(trial_id, trial_params)
        cfg = self.space.trial_config({**trial_params, "train.epochs": epochs})
        reports, saved = [], []

        def report(metrics, checkpoint_dir):
            reports.append(metrics)
            line = dict(metrics)
            if checkpoint_dir is not None:
                name = f"checkpoint_{len(saved):06d}"
                saved.append(name)
                save_checkpoint(load_checkpoint(checkpoint_dir), trial_dir / name)
                for old in sorted(trial_dir.glob("checkpoint_*"))[:-KEPT]:
                    shutil.rmtree(old)
                line["checkpoint_dir_name"] = name
            self.result(trial_id, line, done=done and metrics["epoch"] == epochs)

        run_trial(cfg, report, logdir=self.root / "tensorboard" / f"{self.prefix}_{trial_id}")
        return reports

    def state(self, trial_id, status, trial_params):
        self.states.append((trial_id, status, trial_params))

    def write_state(self):
        """Tune's experiment_state-<time>.json, as TuneController.save_to_dir writes it, from Tune's Trial objects.

        Each trial's storage is the experiment's, as Ray's public `tune.Experiment` makes it, with the trial's
        directory named as Tune names it when it starts a trial."""
        from ray.tune import Experiment, PlacementGroupFactory
        from ray.tune.experiment import Trial
        from ray.tune.utils.serialization import TuneFunctionEncoder

        experiment = Experiment(self.root.name, search_trial, storage_path=str(self.root.parent))
        data = []
        for tid, status, p in self.states:
            storage = copy.copy(experiment.storage)
            storage.trial_dir_name = f"{self.prefix}_{tid}"  # what Trial.init_local_path sets when Tune starts the trial
            trial = Trial("search_trial", config=p, trial_id=tid, stub=True, storage=storage,
                          placement_group_factory=PlacementGroupFactory([{"CPU": 1}]))
            trial.create_placement_group_factory()  # what Tune does before it saves a trial
            trial.set_status(status)
            data.append(list(trial.get_json_state()))
        with open(self.root / "experiment_state-2026-01-01_00-00-00.json", "w") as handle:
            json.dump({"trial_data": data, "runner_data": {}, "stats": {}}, handle, cls=TuneFunctionEncoder)
