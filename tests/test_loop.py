"""raysearch.loop, run directly (no Ray): objectives, resume, divergence, TensorBoard, captions, levers."""

import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.config import load_config
from raysearch.errors import CheckpointError, ConfigError
from models.geometry import crop_center, mask_context
from raysearch import losses
from raysearch.checkpoint import RENAMED_IN_FORMAT_2
from raysearch.loop import Trial, Worker, diverged_metrics, run_trial, train_epoch, validate
from raysearch.loop.epoch import EpochLog, non_finite_weights
from raysearch.loop.batches import augment
from raysearch.loop.networks import WeightAverage
from raysearch.fill import generate
from tests.conftest import SMALL_DATA, validated_by_the_loop

RENAMED_BACK = {new: old for old, new in RENAMED_IN_FORMAT_2.items()}
# A narrow network keeps each step cheap on CPU; the architecture is still the space's.
SMALL_NETS = ["generator.base_width=8", "generator.max_width=32", "critic.base_width=8", "critic.max_width=32"]


class Recorder:
    """A `report` callable that keeps every report and copies checkpoints out of their temp dirs."""

    def __init__(self, root: Path):
        self.root = root
        self.reports: list[dict] = []
        self.checkpoints: list[Path] = []

    def __call__(self, metrics, checkpoint_dir):
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            keep = self.root / f"epoch_{metrics['epoch']:04d}"
            save_checkpoint(load_checkpoint(checkpoint_dir), keep)
            self.checkpoints.append(keep)


def small(space, *extra):
    return load_config(space, SMALL_DATA + SMALL_NETS + list(extra))


@pytest.mark.parametrize("objective", ["l2", "gan", "nsgan", "wgan", "wgan-gp", "hinge"])
def test_every_objective_trains_one_epoch(tmp_path, objective):
    space = {"l2": "l2", "wgan-gp": "wgan_gp"}.get(objective, "wgan")
    extra = [] if objective in ("l2", "wgan", "wgan-gp") else [f"objective.name={objective}"]
    cfg = small(space, "train.epochs=1", "train.steps_per_epoch=4", "train.critic_steps=1", *extra)
    initial = Trial(cfg, Worker()).state()  # the seeded weights the run starts from
    recorder = Recorder(tmp_path)
    last = run_trial(cfg, recorder)
    assert last["diverged"] == 0 and last["epoch"] == 1 and len(recorder.checkpoints) == 1
    trained = load_checkpoint(recorder.checkpoints[0])
    adversarial = objective != "l2"
    # 4 steps, each a critic batch then a generator batch under an adversary; every trained network moved.
    assert trained["step"] == (8 if adversarial else 4)
    networks = ("generator", "critic") if adversarial else ("generator",)
    for network in networks:
        assert any(not torch.equal(trained[network][k], initial[network][k]) for k in initial[network]), network
    assert trained["critic"] is None if not adversarial else "critic/loss" in last and "generator/adversarial" in last
    for key in ("generator/loss", "generator/l2", *(["critic/loss"] if adversarial else [])):
        assert math.isfinite(last[key]), key
    if objective == "wgan-gp":
        assert last["critic_gp/penalty"] > 0
    # What was reported is the validation of what was saved.
    validated, _ = validated_by_the_loop(trained)
    for key, value in validated.items():
        assert last[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def straight_and_resumed(tmp_path, epochs: int, *overrides) -> tuple[Recorder, Recorder]:
    """A wgan-space run of `epochs` straight through, and the second half of the same run resumed from the
    checkpoint of a run that stopped halfway."""
    straight = Recorder(tmp_path / "straight")
    run_trial(small("wgan", f"train.epochs={epochs}", *overrides), straight)
    first = Recorder(tmp_path / "first")
    run_trial(small("wgan", f"train.epochs={epochs // 2}", *overrides), first)
    second = Recorder(tmp_path / "second")
    run_trial(small("wgan", f"train.epochs={epochs}", *overrides), second, checkpoint=first.checkpoints[-1])
    return straight, second


@pytest.mark.slow
def test_resume_gives_the_same_metrics_as_an_uninterrupted_run(tmp_path):
    straight, second = straight_and_resumed(tmp_path, 4, "train.steps_per_epoch=3", "train.critic_steps=2",
                                            "optim.lr_decay=0.9")
    assert [r["epoch"] for r in second.reports] == [3, 4]
    for key in ("val/mse", "val/psnr", "val/swd", "generator/loss", "critic/loss"):
        assert second.reports[-1][key] == pytest.approx(straight.reports[-1][key], rel=1e-4, abs=1e-6), key


def test_checkpoint_holds_the_full_state(tmp_path):
    # What was trained is what is saved, and a Trial restored from it holds exactly that state.
    cfg = small("wgan", "train.epochs=1", "train.steps_per_epoch=2", "train.ema_decay=0.9", "optim.lr_decay=0.5")
    trial = Trial(cfg, Worker())
    train_epoch(trial)
    trial.end_epoch()
    state = trial.state()
    save_checkpoint(state, tmp_path / "ckpt")
    saved = load_checkpoint(tmp_path / "ckpt")
    restored = Trial(cfg, Worker())
    restored.restore(saved, tmp_path / "ckpt")
    again = restored.state()
    for key in ("generator", "critic", "generator_average"):
        before = state[key]["network"] if key == "generator_average" else state[key]
        after = again[key]["network"] if key == "generator_average" else again[key]
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), key
    for key in ("generator_optimizer", "critic_optimizer"):  # Adam's moments and step counts, per parameter
        moments = [(s["exp_avg"], s["exp_avg_sq"], s["step"]) for s in state[key]["state"].values()]
        assert moments and all(torch.equal(a, b) for m, n in zip(moments, [(s["exp_avg"], s["exp_avg_sq"], s["step"])
                                                                         for s in again[key]["state"].values()])
                               for a, b in zip(m, n)), key
    assert again["generator_schedule"]["last_epoch"] == state["generator_schedule"]["last_epoch"] == 1
    assert restored.optimizers.generator.param_groups[0]["lr"] == pytest.approx(cfg.optim.generator_lr * 0.5)
    assert torch.equal(again["rng"]["torch"], state["rng"]["torch"])
    assert (again["epoch"], again["step"]) == (1, trial.step) and trial.step > 0
    assert again["generator_average"]["updates"] == state["generator_average"]["updates"] >= 1
    assert saved["config"] == state["config"] and saved["config"]["objective"]["name"] == "wgan"


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    recorder = Recorder(tmp_path)
    run_trial(small("l2", "train.epochs=1", "train.steps_per_epoch=2"), recorder)
    with pytest.raises(CheckpointError, match="generator.kernel_size"):
        run_trial(small("l2", "train.epochs=2", "generator.kernel_size=5"), Recorder(tmp_path / "b"),
                  checkpoint=recorder.checkpoints[0])


def test_a_foreign_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="state.pt"):
        load_checkpoint(tmp_path)


def test_seed_000_nan_is_reported_as_divergence_not_a_crash(tmp_path):
    # Seed 000's minimax GAN with a critic learning rate far too large: the
    # critic becomes certain, log(0) appears, and the losses turn non-finite.
    # One epoch of L2 pretraining first, so there is a good checkpoint before the critic starts.
    cfg = small(
        "dcgan", "objective.name=gan", "objective.label_smoothing=0", "optim.critic_lr=5.0",
        "optim.name=rmsprop", "train.epochs=4", "train.checkpoint_every=1", "train.pretrain_epochs=1",
    )
    recorder = Recorder(tmp_path)
    last = run_trial(cfg, recorder)
    assert last["diverged"] == 1
    assert last["diverged_phase"] in ("critic", "generator")
    assert 2 <= last["diverged_epoch"] <= 4
    assert last["val/psnr"] == diverged_metrics()["val/psnr"]
    # The last good checkpoint is still the latest one: one per epoch before the divergence, all finite.
    assert [r["epoch"] for r in recorder.reports[:-1]] == list(range(1, last["diverged_epoch"]))
    assert len(recorder.checkpoints) == last["diverged_epoch"] - 1 >= 1
    for path in recorder.checkpoints:
        state = load_checkpoint(path)
        for network in ("generator", "critic"):
            assert all(torch.isfinite(t).all() for t in state[network].values() if t.is_floating_point()), network


def test_tensorboard_files_read_back(tmp_path):
    logdir = tmp_path / "tb"
    run_trial(small("wgan", "train.epochs=2", "train.steps_per_epoch=2"), Recorder(tmp_path), logdir=logdir)
    events = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("val/psnr", "val/swd", "generator/loss", "critic/loss"):
        assert tag in tags["scalars"], tag
        assert [s.step for s in events.Scalars(tag)] == [1, 2]
    (grid,) = tags["images"]
    images = events.Images(grid)
    assert [image.step for image in images] == [1, 2]
    # Three rows (context, truth, generated) of 4 previews, 64 px each with 2 px padding.
    assert (images[-1].height, images[-1].width) == (2 + 3 * 66, 2 + 4 * 66)
    plugins = events.PluginTagToContent("hparams")
    # The trial's session; the experiment-level columns are the search's (summaries.write_experiment_hparams).
    assert "_hparams_/session_start_info" in plugins and "_hparams_/session_end_info" in plugins
    assert "_hparams_/experiment" not in plugins


@pytest.mark.slow
def test_caption_conditioning_beats_no_captions_on_synthetic_data(tmp_path):
    # The synthetic captions name the color and shape of the object hidden in the center.
    common = [
        "data.synthetic_train=1000", "data.synthetic_val=100", "data.val_images=100",
        "generator.base_width=8", "generator.blocks_per_stage=1", "generator.code_size=128",
        "train.epochs=5", "train.batch_size=16", "train.preview_images=0", "optim.generator_lr=2e-3",
    ]
    with_captions = run_trial(load_config("captions", common), Recorder(tmp_path / "a"))
    without = run_trial(load_config("captions", common + ["captions.encoder=none"]), Recorder(tmp_path / "b"))
    # Measured (seed 0): 0.0288 with captions against 0.0342 without after 5 epochs (0.0263 against 0.0342
    # after 8: the gap opens by epoch 4 and holds).
    assert with_captions["val/mse"] < without["val/mse"] * 0.9


def test_config_validation_happens_before_training(monkeypatch, capsys):
    # An invalid combination is refused by the command before Ray starts or any epoch trains.
    from raysearch import runtime, train
    from raysearch.loop import run

    monkeypatch.setattr(runtime, "start_ray", lambda *a, **k: pytest.fail("Ray started before the config check"))
    monkeypatch.setattr(run, "train_epoch", lambda trial: pytest.fail("an epoch trained before the config check"))
    assert train.main(["wgan_gp", "--set", "critic.norm=batch", *[f for o in SMALL_DATA for f in ("--set", o)]]) == 2
    err = capsys.readouterr().err
    assert "critic.norm=batch" in err and len(err.strip().splitlines()) == 1


def test_tensorboard_at_a_storage_uri(tmp_path):
    # On a cluster the experiment lives at a URI (s3://...); file:// takes the same path through pyarrow.
    uri = f"file://{tmp_path}/experiment/tensorboard/trial"
    run_trial(small("l2", "train.epochs=1", "train.steps_per_epoch=2"), Recorder(tmp_path), logdir=uri)
    events = EventAccumulator(str(tmp_path / "experiment/tensorboard/trial"))
    events.Reload()
    assert "val/psnr" in events.Tags()["scalars"] and events.Tags()["images"]


def test_each_epoch_is_on_disk_before_it_is_reported(tmp_path):
    # A trial the scheduler stops is killed right after its report: whatever
    # TensorBoard should show for that epoch must already be written.
    logdir = tmp_path / "tb"
    seen = []

    def report(metrics, checkpoint_dir):
        events = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0})
        events.Reload()
        images = [image.step for image in events.Images("preview/context_truth_generated")]
        seen.append((metrics["epoch"], [s.step for s in events.Scalars("val/psnr")], images))

    run_trial(small("l2", "train.epochs=2", "train.steps_per_epoch=2"), report, logdir=logdir)
    assert seen == [(1, [1], [1]), (2, [1, 2], [1, 2])]


# --- generator levers: weight average, border-weighted reconstruction, input fill ----------

LEVERS = ["generator.input_fill=harmonic", "generator.mask_channel=true", "generator.residual=true",
          "train.ema_decay=0.9", "objective.border_weight=2.0"]


def test_weight_average_follows_the_trained_weights_with_a_warm_up():
    network = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(network.weight)
    average = WeightAverage(network, decay=0.5)
    with torch.no_grad():
        network.weight.fill_(1.0)
    average.update()  # first update: decay min(0.5, 1/10), so 90% of the way
    assert average.network.weight.flatten().tolist() == pytest.approx([0.9, 0.9])
    with torch.no_grad():
        network.weight.fill_(2.0)
    average.update()  # then min(0.5, 2/11) = 2/11
    assert average.network.weight[0, 0].item() == pytest.approx(0.9 + (2.0 - 0.9) * 9 / 11)  # 1.8
    average.updates = 100
    average.update()  # the full decay from here on: halfway
    assert average.network.weight[0, 0].item() == pytest.approx(1.9)
    assert not any(p.requires_grad for p in average.network.parameters())


def test_validation_measures_the_weight_average_not_the_trained_weights():
    trial = Trial(small("l2", "train.epochs=1", "train.steps_per_epoch=2", "train.ema_decay=0.9"), Worker())
    train_epoch(trial)
    before, _ = validate(trial)
    with torch.no_grad():
        for parameter in trial.networks.generator.parameters():
            parameter.add_(torch.randn_like(parameter))
    assert validate(trial)[0] == before  # the trained weights changed, the average did not
    with torch.no_grad():
        for parameter in trial.networks.generator_average.network.parameters():
            parameter.add_(torch.randn_like(parameter))
    assert validate(trial)[0]["val/mse"] != before["val/mse"]


def test_the_generator_step_minimises_the_border_weighted_reconstruction():
    trial = Trial(small("l2", "objective.border_weight=3.0", "generator.context_margin=2", "data.augment=none"),
                  Worker())
    images, tokens = trial.data.batch(torch.arange(16))
    with torch.no_grad():
        center, _ = generate(trial.cfg, trial.networks.generator, mask_context(images), tokens, None)  # train mode
    weights = losses.border_weights(36, 2, 4, 3.0)
    expected = losses.reconstruction(center, crop_center(images, 2), weights)
    assert not torch.isclose(expected, losses.reconstruction(center, crop_center(images, 2)))
    logs = trial.update.generator_step(images, tokens, adversarial=False)
    assert logs["generator/l2"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_resume_with_every_lever_gives_the_same_metrics(tmp_path):
    overrides = ["train.steps_per_epoch=3", *LEVERS]
    straight = Recorder(tmp_path / "straight")
    run_trial(small("l2", "train.epochs=3", *overrides), straight)
    first = Recorder(tmp_path / "first")
    run_trial(small("l2", "train.epochs=1", *overrides), first)
    state = load_checkpoint(first.checkpoints[-1])
    assert state["generator_average"]["updates"] == 3
    second = Recorder(tmp_path / "second")
    run_trial(small("l2", "train.epochs=3", *overrides), second, checkpoint=first.checkpoints[-1])
    for key in ("val/mse", "val/psnr", "val/swd", "generator/loss"):
        assert second.reports[-1][key] == pytest.approx(straight.reports[-1][key], rel=1e-5, abs=1e-7), key


def _symmetries(image):
    """The 8 symmetries of a square image [C, H, W]."""
    turns = [image.rot90(k, dims=(-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


@pytest.mark.parametrize("kind,count", [("none", 1), ("flip", 2), ("dihedral", 8)])
def test_augment_applies_a_random_symmetry_of_the_square_to_each_image(kind, count):
    rng = torch.Generator().manual_seed(0)
    images = torch.randn(256, 3, 8, 8)
    augmented = augment(images, kind, rng)
    used = set()
    for original, seen in zip(images, augmented):
        allowed = _symmetries(original) if kind == "dihedral" else [original, original.flip(-1)][:count]
        matches = [i for i, candidate in enumerate(allowed) if torch.equal(seen, candidate)]
        assert matches, "not a symmetry of its input"
        used.add(matches[0])
    assert len(used) == count  # every allowed symmetry is drawn over 256 images
    rng.manual_seed(0)
    assert torch.equal(augment(images, kind, rng), augmented)  # from the seeded sampling RNG


def test_both_phases_train_on_augmented_images(monkeypatch):
    from raysearch.loop import phases

    trial = Trial(small("wgan", "data.augment=flip"), Worker())
    images, tokens = trial.data.batch(torch.arange(16))
    calls = []
    original = phases.augment
    monkeypatch.setattr(phases, "augment",
                        lambda batch, kind, rng: calls.append((len(batch), kind)) or original(batch, kind, rng))
    trial.update.critic_step(images, tokens)
    trial.update.generator_step(images, tokens, adversarial=True)
    assert calls == [(16, "flip"), (16, "flip")]


# --- the adversarial recipes of current inpainting models -----------------------------------

RECIPES = {
    "patch_critic": ["critic.name=patch", "critic.depth=2", "critic.input=whole"],
    "mask_aware_labels": ["critic.name=patch", "critic.depth=2", "critic.input=whole",
                          "objective.mask_aware_labels=true"],
    "lazy_r1": ["objective.r1_weight=1.0", "objective.r1_every=2", "critic.norm=spectral"],
    "spectral_norm": ["critic.norm=spectral"],
    "feature_matching": ["objective.feature_matching_weight=1.0"],
    "contextual_attention": ["generator.contextual_attention=16"],
    "realism_residual": ["generator.realism_residual=true"],
    "noise_map": ["generator.noise_map=true"],
}
OBJECTIVES = ["l2", "gan", "nsgan", "wgan", "wgan-gp", "hinge"]


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_trains_an_epoch_or_is_refused_in_one_line(tmp_path, recipe, objective):
    space = {"l2": "l2", "wgan-gp": "wgan_gp"}.get(objective, "wgan")
    norm = [] if objective != "wgan-gp" or "critic.norm=spectral" in RECIPES[recipe] else ["critic.norm=layer"]
    overrides = ["train.epochs=1", "train.steps_per_epoch=2", "train.critic_steps=2", "train.preview_images=0",
                 f"objective.name={objective}", *norm, *RECIPES[recipe]]
    try:
        cfg = small(space, *overrides)
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message and any(key.split("=")[0] in message for key in RECIPES[recipe]), message
        return
    last = run_trial(cfg, Recorder(tmp_path))
    assert last["diverged"] == 0 and math.isfinite(last["generator/loss"]) and math.isfinite(last["val/psnr"])
    if recipe == "lazy_r1":
        assert math.isfinite(last["critic_r1/penalty"])
    if recipe == "feature_matching" and cfg.objective.adversarial:
        assert last["generator/feature_matching"] > 0
    if recipe == "realism_residual":
        assert math.isfinite(last["generator/l2_path"])


def test_the_recipes_that_need_a_critic_or_a_classifying_loss_are_refused_where_they_cannot_apply():
    refused = {(recipe, objective) for recipe in RECIPES for objective in OBJECTIVES
               if not _builds({"l2": "l2", "wgan-gp": "wgan_gp"}.get(objective, "wgan"),
                              f"objective.name={objective}", *RECIPES[recipe])}
    assert ("lazy_r1", "wgan") in refused and ("lazy_r1", "wgan-gp") in refused and ("lazy_r1", "nsgan") not in refused
    assert ("mask_aware_labels", "wgan") in refused and ("mask_aware_labels", "hinge") not in refused
    assert {("feature_matching", "l2"), ("realism_residual", "l2")} <= refused
    assert ("contextual_attention", "l2") not in refused and ("noise_map", "l2") not in refused  # generator options


def _builds(space, *overrides) -> bool:
    try:
        small(space, *overrides)
    except ConfigError:
        return False
    return True


def test_lazy_r1_runs_every_kth_critic_step_and_its_clock_survives_a_resume(tmp_path):
    overrides = ["objective.name=nsgan", "objective.r1_weight=1.0", "objective.r1_every=3", "critic.norm=spectral",
                 "train.steps_per_epoch=2", "train.critic_steps=2", "train.preview_images=0"]
    trial = Trial(small("wgan", *overrides), Worker())
    images, tokens = trial.data.batch(torch.arange(16))
    fired = ["critic_r1/penalty" in trial.update.critic_step(images, tokens) for _ in range(7)]
    assert fired == [True, False, False, True, False, False, True]
    assert trial.state()["critic_steps"] == 7
    straight, second = straight_and_resumed(tmp_path, 2, *overrides)
    assert second.reports[-1]["critic_r1/penalty"] == pytest.approx(straight.reports[-1]["critic_r1/penalty"])


def test_a_checkpoint_from_before_an_option_existed_or_a_key_was_renamed_resumes_as_it_would_have(tmp_path):
    recorder = Recorder(tmp_path)
    run_trial(small("l2", "train.epochs=1", "train.steps_per_epoch=2"), recorder)
    state = load_checkpoint(recorder.checkpoints[0])
    # As an older raysearch wrote it: no R1 option in its config, no R1 clock, and (checkpoint format 1) the
    # optimisers' and schedules' entries under their first names.
    older = {RENAMED_BACK.get(k, k): v for k, v in state.items() if k != "critic_steps"}
    older["config"] = {**state["config"], "objective": {k: v for k, v in state["config"]["objective"].items()
                                                        if k != "r1_weight"}}
    older["format_version"] = 1
    save_checkpoint(older, tmp_path / "older")
    assert "opt_g" in torch.load(tmp_path / "older" / "state.pt", weights_only=True)
    resumed = {}
    for name, source in (("today", recorder.checkpoints[0]), ("older", tmp_path / "older")):
        resumed[name] = Recorder(tmp_path / f"from-{name}")
        run_trial(small("l2", "train.epochs=2", "train.steps_per_epoch=2"), resumed[name], checkpoint=source)
    assert [r["epoch"] for r in resumed["older"].reports] == [2]
    for key in ("val/psnr", "val/swd", "generator/loss", "train/generator_lr"):
        assert resumed["older"].reports[-1][key] == resumed["today"].reports[-1][key], key


# --- compiled training, the epoch's batches and logs, the divergence watch ------------------

# Inductor compiles C++ kernels on CPU: minutes on 2 cores (its on-disk cache
# makes the objectives after the first cheaper).
@pytest.mark.slow
@pytest.mark.parametrize("objective", ["l2", "gan", "nsgan", "wgan", "hinge"])
def test_compiled_training_runs_one_epoch_for_every_objective(objective):
    space = "l2" if objective == "l2" else "wgan"
    extra = [] if objective in ("l2", "wgan") else [f"objective.name={objective}"]
    cfg = small(space, "train.compile=true", "train.epochs=1", "train.steps_per_epoch=2", "train.critic_steps=1",
                "train.preview_images=0", *extra)
    last = run_trial(cfg, lambda metrics, checkpoint: None)
    assert last["diverged"] == 0 and last["epoch"] == 1
    assert math.isfinite(last["generator/loss"]) and math.isfinite(last["val/mse"])
    if objective != "l2":
        assert math.isfinite(last["critic/loss"])


def test_a_trial_run_without_ray_trains_on_the_device_the_config_names(monkeypatch):
    from raysearch.loop import local_worker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_worker(small("l2", "train.device=auto")).device == torch.device("cpu")
    assert local_worker(small("l2", "train.device=cpu")).device == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"train.device=cuda: torch sees no GPU"):
        local_worker(small("l2", "train.device=cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert local_worker(small("l2", "train.device=auto")).device == torch.device("cuda")


def test_epoch_batches_are_on_the_device_and_cover_the_data_once():
    cfg = small("l2", "data.synthetic_train=100", "train.batch_size=16", "train.preview_images=0")
    trial = Trial(cfg, Worker())
    batches = trial.data.epoch_batches(0)
    assert [len(b) for b in batches] == [16] * 6  # full batches only
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == 96 and all(b.device == trial.device for b in batches)


def test_epoch_log_names_the_phase_that_went_non_finite_first():
    log = EpochLog()
    finite = torch.tensor(1.0)
    for batch in range(6):
        log.add(batch, {"critic/loss": finite if batch < 4 else torch.tensor(math.inf), "critic/real_score": finite})
        log.add(batch, {"generator/loss": finite if batch < 2 else torch.tensor(math.nan)})
        if batch == 3:
            assert log.diverged_phase() == "generator"  # a check part-way sees the generator's batch 2
    assert log.diverged_phase() == "generator"  # still the earliest, after the critic's batch 4 went bad too
    assert log.first_bad == {"generator": 2, "critic": 4}
    clean = EpochLog()
    clean.add(0, {"critic/loss": finite, "critic_gp/penalty": finite})
    assert clean.diverged_phase() is None
    clean.add(1, {"critic/loss": finite, "critic_gp/penalty": torch.tensor(math.inf)})
    assert clean.diverged_phase() == "critic_gp"


def test_epoch_log_means_every_key_over_its_own_entries():
    log = EpochLog()
    log.add(0, {"critic/loss": torch.tensor(1.0)})
    log.add(1, {"critic/loss": torch.tensor(3.0), "generator/loss": torch.tensor(5.0)})
    assert log.means() == {"critic/loss": 2.0, "generator/loss": 5.0}


@pytest.mark.parametrize("network", ["generator", "critic"])
def test_non_finite_weight_check_names_the_network(network):
    trial = Trial(small("wgan", "train.preview_images=0"), Worker())
    assert non_finite_weights(trial) is None
    with torch.no_grad():
        parameters = list(getattr(trial.networks, network).parameters())
        parameters[len(parameters) // 2].view(-1)[3] = math.nan
    assert non_finite_weights(trial) == network
