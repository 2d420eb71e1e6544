"""Population Based Training without Ray: the tune.pbt block's checks, the seeded bounded exploration, the
starting population, trials that take a mutation (restore under new values, a replayed schedule), and the
lineage read back from the trials' results."""

import dataclasses
import random

import pytest
import torch
import yaml

from raysearch import mutations
from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.config import load_config
from raysearch.errors import CheckpointError, ConfigError
from raysearch.lineage import (COPIED_CHECKPOINT, COPIED_FROM, copies, copy_marks, describe_copies, draw_lineage,
                               lineage_lines, schedule_of, trace)
from raysearch.loop import Trial, Worker, phase_cycle, run_trial, train_epoch
from raysearch.mutations import Schedule, parse_schedule, schedule_key
from raysearch.pbt import Explorer, PbtSettings, mutated_params, perturb
from raysearch.population import sample_population
from raysearch.spaces import load_space
from tests.conftest import SMALL_DATA
from tests.pickles import round_trip
from tests.test_loop import SMALL_NETS, Recorder


def small(*extra):
    return load_config("wgan", SMALL_DATA + SMALL_NETS + ["train.steps_per_epoch=2", "train.critic_steps=1",
                                                          *extra])


# ---------------------------------------------------------------- a trial takes a mutation


def test_a_restore_under_mutated_values_loads_the_donor_then_applies_the_new_values(tmp_path):
    donor = Trial(small("optim.lr_decay=0.5", "optim.generator_lr=1e-4", "optim.critic_lr=1e-4"), Worker())
    train_epoch(donor)
    donor.end_epoch()
    saved = save_checkpoint(donor.state(), tmp_path / "donor")
    recipient_cfg = small("optim.lr_decay=0.5", "optim.generator_lr=4e-4", "optim.critic_lr=1e-4",
                          "train.critic_steps=3", "objective.adv_weight=900")
    recipient = Trial(recipient_cfg, Worker())
    recipient.restore(load_checkpoint(saved), saved)

    state, taken = donor.state(), recipient.state()
    for network in ("generator", "critic"):  # the donor's weights, exactly
        assert all(torch.equal(state[network][k], taken[network][k]) for k in state[network]), network
    moments = [(s["exp_avg"], s["step"]) for s in state["generator_optimizer"]["state"].values()]
    again = [(s["exp_avg"], s["step"]) for s in taken["generator_optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for m, n in zip(moments, again) for a, b in zip(m, n))  # and its Adam moments
    assert recipient.epoch == 1 and recipient.step == donor.step
    # The new learning rate, decayed as if the run had started with it; the unchanged one as the donor had it.
    generator = recipient.optimizers.generator
    assert generator.param_groups[0]["lr"] == pytest.approx(4e-4 * 0.5)
    assert recipient.optimizers.generator_schedule.base_lrs == [pytest.approx(4e-4)]
    assert recipient.optimizers.critic.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5)
    recipient.end_epoch()  # the decay goes on from the new value
    assert generator.param_groups[0]["lr"] == pytest.approx(4e-4 * 0.25)
    # Steps and weights: what the update reads.
    assert recipient.update.cfg.objective.adv_weight == 900
    assert phase_cycle(recipient.cfg, adversarial=True) == ["critic"] * 3 + ["generator"]


def test_any_other_difference_is_still_refused_naming_what_may_differ(tmp_path):
    donor = Trial(small(), Worker())
    saved = save_checkpoint(donor.state(), tmp_path / "donor")
    with pytest.raises(CheckpointError) as info:
        Trial(small("generator.kernel_size=5", "optim.generator_lr=3e-4"), Worker()).restore(
            load_checkpoint(saved), saved)
    message = str(info.value)
    assert "generator.kernel_size (3 in the checkpoint, 5 now)" in message and "\n" not in message
    assert "optim.generator_lr" in message.split("only these may differ")[1]  # the allowed keys, not a difference
    assert "optim.generator_lr (" not in message


def test_a_schedule_changes_values_at_its_epochs_and_reports_them(tmp_path):
    schedule = Schedule(changes=((1, {"optim.generator_lr": 5e-4, "train.critic_steps": 2}),),
                        tracked=("optim.generator_lr", "train.critic_steps"))
    cfg = small("train.epochs=3", "optim.lr_decay=0.5", "optim.generator_lr=1e-4")
    recorder = Recorder(tmp_path)
    run_trial(cfg, recorder, schedule=schedule)
    reports = recorder.reports
    assert [r[schedule_key("optim.generator_lr")] for r in reports] == [1e-4, 5e-4, 5e-4]
    assert [r[schedule_key("train.critic_steps")] for r in reports] == [1, 2, 2]
    # The lr each epoch trained with: 1e-4, then the new value decayed for the epochs already done.
    assert [r["train/generator_lr"] for r in reports] == pytest.approx([1e-4, 5e-4 * 0.5, 5e-4 * 0.25])
    # Two cycles an epoch: 1 critic + 1 generator batch, then 2 + 1 from epoch 2 on.
    assert [load_checkpoint(c)["step"] for c in recorder.checkpoints] == [4, 10, 16]

    # Resumed mid-schedule (from epoch 2's checkpoint) it trains what the straight run trained.
    resumed = Recorder(tmp_path / "resumed")
    run_trial(cfg, resumed, schedule=schedule, checkpoint=recorder.checkpoints[1])
    assert [r["epoch"] for r in resumed.reports] == [3]
    assert resumed.reports[0]["train/generator_lr"] == pytest.approx(5e-4 * 0.25)
    for key in ("val/psnr", "generator/loss", "critic/loss"):
        assert resumed.reports[0][key] == pytest.approx(reports[-1][key], rel=1e-4, abs=1e-6), key


def test_a_schedule_section_is_checked_in_one_line():
    parsed = parse_schedule({4: {"optim.critic_lr": 2e-4}, 0: {"optim.critic_lr": 1e-4}}, "best.yaml")
    assert parsed.changes == ((0, {"optim.critic_lr": 1e-4}), (4, {"optim.critic_lr": 2e-4}))
    assert parsed.values_at(3) == {"optim.critic_lr": 1e-4} and parsed.values_at(4) == {"optim.critic_lr": 2e-4}
    for raw, words in [({2: {"generator.kernel_size": 5}}, ["schedule.2.generator.kernel_size", "allowed"]),
                       ({-1: {"optim.critic_lr": 1e-4}}, ["-1", "epoch"]), ([1, 2], ["mapping"])]:
        with pytest.raises(ConfigError) as info:
            parse_schedule(raw, "best.yaml")
        assert str(info.value).startswith("best.yaml: schedule") and all(w in str(info.value) for w in words)


# ---------------------------------------------------------------- the tune.pbt block


def pbt_space(tmp_path, tune=None, search=None, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({
        "base": {"objective": {"name": "wgan", "adv_weight": 100.0}, "train": {"checkpoint_every": 3}},
        "search": search or {"optim.generator_lr": {"loguniform": [1e-5, 1e-3]},
                             "train.critic_steps": {"int": [1, 5]},
                             "generator.kernel_size": {"choice": [3, 5]}},
        "metric": "val/swd",
        "tune": {"scheduler": "pbt", "searcher": "random", "num_samples": 4, "max_epochs": 6,
                 "pbt": {"interval": 2}, **(tune or {})},
    }, sort_keys=False))
    return path


def test_a_pbt_space_loads_with_its_mutable_keys_and_checkpoints_every_interval(tmp_path):
    space = load_space(str(pbt_space(tmp_path)))
    assert space.tune.scheduler == "pbt" and space.tune.pbt.interval == 2
    # By default every searched key a running trial can take; the kernel size is sampled once per member.
    assert [p.key for p in mutated_params(space.tune, space.params)] == ["optim.generator_lr", "train.critic_steps"]
    from raysearch.pbt import trial_values

    assert trial_values(space.tune, space.config.train.checkpoint_every) == {"train.checkpoint_every": 1}


@pytest.mark.parametrize("tune, search, words", [
    ({"searcher": "optuna"}, None, ["tune.searcher: optuna", "scheduler: pbt", "searcher: random", "--init-from"]),
    ({"pbt": {"mutate": ["generator.kernel_size"]}}, None,
     ["tune.pbt.mutate: generator.kernel_size cannot change during a run", "allowed: optim.generator_lr"]),
    ({"pbt": {"mutate": ["optim.critic_lr"]}}, None, ["optim.critic_lr is not in search:"]),
    ({"pbt": {"interval": 6}}, None, ["tune.pbt.interval: 6", "max_epochs (6)"]),
    ({"resources": {"workers": 2}}, None, ["workers: 1", "DDP"]),
    ({"pbt": {"quantile": 0.7}}, None, ["tune.pbt.quantile", "(0, 0.5]"]),
    ({"pbt": {"mutat": []}}, None, ["tune.pbt.mutat", "mutate"]),
    ({"scheduler": "asha", "searcher": "optuna"}, None, ["tune.pbt: set", "scheduler is asha"]),
    ({}, {"generator.kernel_size": {"choice": [3, 5]}}, ["none of the searched keys", "generator.kernel_size"]),
    ({"scheduler": "pb2", "pbt": {"interval": 2, "mutate": ["generator.kernel_size"]}}, None, ["cannot change"]),
])
def test_what_pbt_cannot_run_is_one_line_when_the_space_loads(tmp_path, tune, search, words):
    path = pbt_space(tmp_path, tune, search)
    with pytest.raises(ConfigError) as info:
        load_space(str(path))
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message, message


def test_pb2_takes_continuous_and_int_ranges_only(tmp_path):
    path = pbt_space(tmp_path, {"scheduler": "pb2", "pbt": {"interval": 2, "mutate": ["optim.generator_lr"]}},
                     {"optim.generator_lr": {"loguniform": [1e-5, 1e-3]},
                      "objective.name": {"choice": ["wgan", "hinge"]}})
    pytest.importorskip("sklearn")
    load_space(str(path))
    path = pbt_space(tmp_path, {"scheduler": "pb2", "pbt": {"interval": 2}},
                     {"optim.generator_lr": {"loguniform": [1e-5, 1e-3]},
                      "objective.clip": {"loguniform": [0.005, 0.1], "when": {"objective.name": "wgan"}},
                      "train.critic_steps": {"int": [1, 5]}})
    with pytest.raises(ConfigError, match="objective.clip is searched only `when`"):
        load_space(str(path))


# ---------------------------------------------------------------- exploration and the population


def test_exploration_is_seeded_and_stays_inside_every_range(tmp_path):
    space = load_space(str(pbt_space(tmp_path, search={
        "optim.generator_lr": {"loguniform": [1e-5, 1e-3]}, "train.critic_steps": {"int": [1, 5]},
        "objective.instance_noise": {"uniform": [0.0, 0.2]},
        "objective.adv_weight": {"choice": [100.0, 300.0, 1000.0]}})))
    params = mutated_params(space.tune, space.params)
    start = {"optim.generator_lr": 1e-3, "train.critic_steps": 1, "objective.instance_noise": 0.2,
             "objective.adv_weight": 300.0, "generator.kernel_size": 5}
    explorer, again, other = (Explorer(params, space.tune.pbt, seed) for seed in (0, 0, 1))
    walk = [explorer(start) for _ in range(200)]
    assert walk == [again(start) for _ in range(200)]  # the same seed explores the same way
    assert walk != [other(start) for _ in range(200)]
    for config in walk:
        assert 1e-5 <= config["optim.generator_lr"] <= 1e-3 and 1 <= config["train.critic_steps"] <= 5
        assert 0.0 <= config["objective.instance_noise"] <= 0.2
        assert config["objective.adv_weight"] in (100.0, 300.0, 1000.0)
        assert config["generator.kernel_size"] == 5  # not mutated: it travels with the checkpoint
    assert {c["train.critic_steps"] for c in walk} >= {1, 2}  # an int of 1 moves (Ray's x1.2 rounds back to 1)
    assert {c["objective.adv_weight"] for c in walk} == {100.0, 300.0, 1000.0}  # a choice: to its neighbours
    assert max(c["optim.generator_lr"] for c in walk) == 1e-3  # clipped at the top, not 1.2e-3
    # A key the member does not hold (its `when` does not apply) stays absent / None.
    assert "objective.instance_noise" not in explorer({"optim.generator_lr": 1e-4})
    assert round_trip(explorer).explorations == explorer.explorations


def test_perturbation_moves_by_the_factors():
    from raysearch.spaces import Param

    rng = random.Random(0)
    lr = Param("optim.generator_lr", "loguniform", 1e-5, 1e-3)
    moved = sorted({round(perturb(lr, 1e-4, rng, (1.2, 0.8)), 12) for _ in range(50)})
    assert moved == [0.8e-4, 1.2e-4]
    steps = Param("train.critic_steps", "int", 1, 10)
    assert sorted({perturb(steps, 5, rng, (1.2, 0.8)) for _ in range(50)}) == [4, 6]
    assert sorted({perturb(steps, 10, rng, (1.2, 0.8)) for _ in range(50)}) == [8, 10]  # 12 clipped to 10


def test_the_starting_population_is_seeded_samples_of_the_space(tmp_path):
    space = load_space(str(pbt_space(tmp_path, search={
        "objective.name": {"choice": ["wgan", "hinge"]},
        "objective.clip": {"loguniform": [0.005, 0.1], "when": {"objective.name": "wgan"}},
        "optim.generator_lr": {"loguniform": [1e-5, 1e-3]}})))
    members = sample_population(space, 12, seed=0)
    assert members == sample_population(space, 12, seed=0) and members != sample_population(space, 12, seed=1)
    assert {m["objective.name"] for m in members} == {"wgan", "hinge"}
    for member in members:
        assert ("objective.clip" in member) == (member["objective.name"] == "wgan")
        assert all(p.contains(member[p.key]) for p in space.params if p.key in member)
        space.trial_config(member)  # every member is a valid config


# ---------------------------------------------------------------- the lineage


def result(epoch, lr, steps, checkpoint=None, **extra):
    row = {"epoch": epoch, schedule_key("optim.generator_lr"): lr, schedule_key("train.critic_steps"): float(steps),
           "score/val/swd": 100.0 - epoch}
    if checkpoint:
        row["checkpoint_dir_name"] = checkpoint
    return {**row, **extra}


def population_histories():
    """a trains 4 epochs; b copies a's epoch-2 checkpoint at its epoch 2 (lr x1.2), then c copies b's epoch-4
    checkpoint at its own epoch 4: c's weights are a's epochs 1-2, b's 3-4, c's 5-6."""
    nan = float("nan")
    a = [result(1, 1e-4, 2), result(2, 1e-4, 2, "checkpoint_000001"), result(3, 1e-4, 2),
         result(4, 1e-4, 2, "checkpoint_000003")]
    b = [result(1, 5e-4, 4), result(2, 5e-4, 4, "checkpoint_000001"),
         result(3, 1.2e-4, 2, **{COPIED_FROM: "wgan_a", COPIED_CHECKPOINT: "checkpoint_000001"}),
         result(4, 1.2e-4, 2, "checkpoint_000003", **{COPIED_FROM: nan})]
    c = [result(e, 3e-4, 1, f"checkpoint_{e:06d}") for e in range(1, 5)] + [
        result(5, 1.2e-4, 3, **{COPIED_FROM: "wgan_b", COPIED_CHECKPOINT: "checkpoint_000003"}),
        result(6, 1.2e-4, 3)]
    return {"wgan_a": a, "wgan_b": b, "wgan_c": c}


def test_the_lineage_is_traced_through_each_donor_to_a_first_member(tmp_path):
    histories = population_histories()
    assert describe_copies(copies("wgan_b", histories["wgan_b"])) == "wgan_a@2"
    (copy,) = copies("wgan_c", histories["wgan_c"])
    assert (copy.donor, copy.epoch, copy.was_at, copy.values) == (
        "wgan_b", 4, 4, {"optim.generator_lr": 1.2e-4, "train.critic_steps": 3})
    per_epoch, segments = trace("wgan_c", histories)
    assert [(s.trial, s.first, s.last) for s in segments] == [("wgan_a", 1, 2), ("wgan_b", 3, 4), ("wgan_c", 5, 6)]
    schedule = schedule_of("wgan_c", histories)
    assert schedule.changes == ((0, {"optim.generator_lr": 1e-4, "train.critic_steps": 2}),
                                (2, {"optim.generator_lr": 1.2e-4}), (4, {"train.critic_steps": 3}))
    assert isinstance(schedule.changes[0][1]["train.critic_steps"], int)  # typed for the config
    lines = lineage_lines(histories, "wgan_c")
    assert "  wgan_b <- wgan_a @ epoch 2 (was at 2): optim.generator_lr=0.00012, train.critic_steps=2" in lines
    assert any("wgan_a epochs 1-2 -> wgan_b epochs 3-4 -> wgan_c epochs 5-6" in line for line in lines)
    picture = draw_lineage(histories, "wgan_c", tmp_path / "lineage.png")
    from PIL import Image

    assert Image.open(picture).size[0] >= 480


def test_a_trial_names_a_donor_only_for_another_trials_checkpoint():
    assert copy_marks(None, "/x/exp/wgan_a") == {}
    assert copy_marks("/x/exp/wgan_a/checkpoint_000002", "/x/exp/wgan_a") == {}  # its own: a resume
    assert copy_marks("bucket/exp/wgan_b/checkpoint_000002/", "/tmp/staging/exp/wgan_a") == {
        COPIED_FROM: "wgan_b", COPIED_CHECKPOINT: "checkpoint_000002"}


def test_a_replayed_resume_of_its_own_checkpoint_keeps_the_lineage():
    # After a kill, a trial re-reports the epochs after its last checkpoint: the latest report of each counts.
    histories = population_histories()
    histories["wgan_a"] = histories["wgan_a"] + [result(3, 9e-5, 2), result(4, 9e-5, 2)]
    per_epoch, _ = trace("wgan_a", histories)
    assert [per_epoch[e]["optim.generator_lr"] for e in (1, 2, 3, 4)] == [1e-4, 1e-4, 9e-5, 9e-5]


def test_mutations_apply_through_the_public_schedule_api():
    cfg = small()
    changed = mutations.with_values(cfg, {"objective.clip": 0.05}, "test")
    assert changed.objective.clip == 0.05 and dataclasses.replace(changed.objective, clip=cfg.objective.clip) == \
        cfg.objective
    with pytest.raises(ConfigError, match="critic.depth cannot change during a run"):
        mutations.with_values(cfg, {"critic.depth": 3}, "test")
    with pytest.raises(ValueError, match="interval"):
        PbtSettings(interval=0)


# ---------------------------------------------------------------- --init-from, and Ray's schedulers built (no Ray run)


def test_init_from_starts_with_a_finished_searchs_top_configs(tmp_path):
    from raysearch.population import population_from, starting_population
    from tests.fake_tune import OVERRIDES, SPACE, FakeTune, params

    root = tmp_path / "finished"
    fake = FakeTune(root)
    for trial_id, lr, psnr in (("aaaa0001", 1e-3, 20.0), ("bbbb0002", 3e-4, 22.0), ("cccc0003", 6e-4, 21.0)):
        fake.trial_dir(trial_id, params(lr))
        fake.result(trial_id, {"val/psnr": psnr, "score/val/psnr": psnr, "epoch": 2, "diverged": 0}, done=True)
    space = load_space(SPACE, OVERRIDES)
    members = population_from(str(root), space, 2)
    assert [m["optim.generator_lr"] for m in members] == [3e-4, 6e-4]  # best score first
    settings = dataclasses.replace(space.tune, num_samples=5, scheduler="pbt", searcher="random",
                                   pbt=PbtSettings(interval=1, init_from=str(root)))
    notes = []
    started = starting_population(space, settings, log=notes.append)
    assert started[:3] == population_from(str(root), space, 3) and len(started) == 5
    assert "3 trial(s) with a score; 2 more members are seeded samples" in notes[0]

    fake.trial_dir("dddd0004", {**params(1e-3), "optim.generator_lr": 5.0})  # outside this space's range
    fake.result("dddd0004", {"val/psnr": 30.0, "score/val/psnr": 30.0, "epoch": 2, "diverged": 0}, done=True)
    with pytest.raises(ConfigError, match=r"--init-from .*dddd0004 has optim.generator_lr=5.0, outside"):
        population_from(str(root), space, 2)
    with pytest.raises(ConfigError, match="--init-from .*not a raysearch experiment"):
        population_from(str(tmp_path), space, 2)


class RestoredPopulation:
    """What a synchronous PBT scheduler asks of Tune's controller, for members restored mid-search (Ray's public
    stub Trial: no Ray started). Every member is paused with no checkpoint, so a sync copies nothing."""

    search_alg = None

    def __init__(self, epochs):
        from ray.tune.experiment import Trial as TuneTrial

        self.members = []
        for name, epoch in epochs.items():
            member = TuneTrial("__fake", trial_id=name, stub=True)
            member.update_last_result({"epoch": epoch, "score/val/swd": -1.0})
            member.set_status(TuneTrial.PAUSED)
            self.members.append(member)

    def get_trials(self):
        return self.members

    def get_live_trials(self):
        return self.members

    def _schedule_trial_save(self, trial, result=None):
        return None  # the save Ray's PBT asks of a running top member at a sync: none here, so none is copied

    def report(self, scheduler, member, epoch):
        member.set_status(member.RUNNING)
        decision = scheduler.on_trial_result(self, member, {"epoch": epoch, "score/val/swd": -float(epoch)})
        member.update_last_result({"epoch": epoch})  # as Tune does, after the scheduler has decided
        if decision == scheduler.PAUSE:
            member.set_status(member.PAUSED)
        return decision


@pytest.mark.parametrize("restored_at", [0, 6, 7])
def test_a_synchronous_population_restored_mid_search_meets_at_its_next_interval(tmp_path, restored_at):
    # Tune gives a resumed search its scheduler as built: one that counted from epoch 0 met members restored at
    # 7 at epoch 8, then set its next sync to 8, where all of them were: none could run, and the CI's resumed
    # wgan_pbt search waited out its 500 s. Here one member trains at a time (one CPU), as Tune would run them.
    from ray.tune.schedulers import TrialScheduler

    from raysearch.pbt_scheduler import make_scheduler

    space = load_space(str(pbt_space(tmp_path, {"max_epochs": 12, "pbt": {"interval": 2, "synch": True}})))
    scheduler = round_trip(make_scheduler(space, space.tune))  # as Tuner.restore gets it
    population = RestoredPopulation({"a": restored_at, "b": restored_at})
    for member in population.members:
        scheduler.on_trial_add(population, member)
    sync = restored_at // 2 * 2 + 2  # the next multiple of the interval: the population's own schedule
    for _ in range(2):  # this sync point and the one after it
        for member in population.members:
            assert scheduler.choose_trial_to_run(population) is member  # the one behind
            for epoch in range(member.last_result["epoch"] + 1, sync):
                assert population.report(scheduler, member, epoch) == TrialScheduler.CONTINUE
            assert population.report(scheduler, member, sync) == TrialScheduler.PAUSE  # waits for the others
        sync += 2


def test_the_schedulers_are_rays_seeded_and_leave_the_global_generators_alone(tmp_path):
    import numpy as np
    from ray.tune.schedulers import PopulationBasedTraining

    from raysearch.pbt_scheduler import make_scheduler, seeded_generators

    space = load_space(str(pbt_space(tmp_path)))
    scheduler = make_scheduler(space, space.tune)
    assert isinstance(scheduler, PopulationBasedTraining) and scheduler.max_t == 6
    random.seed(7)
    np.random.seed(7)
    expected = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    with seeded_generators("x"):
        inside = (random.random(), np.random.random())
    with seeded_generators("x"):
        assert (random.random(), np.random.random()) == inside  # the same seed, the same draws
    assert (random.random(), np.random.random()) == expected  # and the process's own sequence goes on untouched
    pytest.importorskip("sklearn")
    pb2 = load_space(str(pbt_space(tmp_path, {"scheduler": "pb2", "pbt": {"interval": 2}},
                                   {"optim.generator_lr": {"loguniform": [1e-5, 1e-3]},
                                    "train.critic_steps": {"int": [1, 5]}}, name="pb2.yaml")))
    assert type(make_scheduler(pb2, pb2.tune)).__name__ == "SeededPB2"
    from raysearch.pbt import Clipper

    clipper = Clipper(mutated_params(pb2.tune, pb2.params))  # PB2's GP proposals, into the ranges
    assert clipper({"optim.generator_lr": 2e-3, "train.critic_steps": 5.7}) == {
        "optim.generator_lr": 1e-3, "train.critic_steps": 5}
