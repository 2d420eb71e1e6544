"""MultiObjectiveASHA: the rung rule driven with Ray's own Trial objects (no Ray started), then one real Tune
run on a local Ray that stops the dominated trials, keeps the front, and restores."""

import math
import os
import pickle

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from raysearch.frontier import nondominated_fronts
from raysearch.schedulers import MultiObjectiveASHA, rung_milestones
from tests.pickles import round_trip

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
METRICS, MODES = ["psnr", "swd"], ["max", "min"]  # fidelity up, distance to real textures down


def scheduler(**overrides):
    settings = {"metrics": METRICS, "modes": MODES, "max_t": 9, "grace_period": 1, "reduction_factor": 3}
    return MultiObjectiveASHA(**{**settings, **overrides})


def trial(name):
    # Ray's public Trial, as Tune hands it to a scheduler; a stub needs no Ray and no trainable.
    return Trial("__fake", trial_id=name, stub=True)


def report(sched, name, epoch, psnr=None, swd=None, **extra):
    result = {"epoch": epoch, **({"psnr": psnr} if psnr is not None else {}),
              **({"swd": swd} if swd is not None else {}), **extra}
    return sched.on_trial_result(None, trial(name), result)


# ---------------------------------------------------------------- rungs and the budget


def test_rungs_are_ashas_below_max_t():
    assert rung_milestones(1, 3, 27) == [1, 3, 9]
    assert rung_milestones(2, 2, 17) == [2, 4, 8, 16]
    assert rung_milestones(4, 2, 4) == []
    assert scheduler().milestones == [1, 3]


def test_max_t_ends_a_trial_and_results_before_the_grace_period_continue():
    sched = scheduler(grace_period=3)
    assert report(sched, "a", 1, 20, 100) == CONTINUE
    assert report(sched, "a", 2, 20, 100) == CONTINUE
    assert report(sched, "a", 9, 20, 100) == STOP
    assert report(sched, "b", 12, 30, 10) == STOP
    assert sched.on_trial_result(None, trial("c"), {"psnr": 1.0, "swd": 1.0}) == CONTINUE  # no epoch: no decision


# ---------------------------------------------------------------- the promotion rule


def test_a_dominated_trial_stops_at_a_rung():
    sched = scheduler()
    assert report(sched, "a", 1, 20, 100) == CONTINUE  # first at the rung
    assert report(sched, "b", 1, 22, 120) == STOP  # non-dominated, but the quota is ceil(2 / 3) = 1
    assert report(sched, "c", 1, 19, 130) == STOP  # dominated by a and b


def test_a_dominated_trial_stops_even_when_the_quota_is_large():
    sched = scheduler(reduction_factor=2)
    for name, psnr, swd in [("a", 20, 100), ("b", 21, 110), ("c", 22, 120)]:
        report(sched, name, 1, psnr, swd)
    # n = 4, quota 2: the three non-dominated trials come first, d last.
    assert report(sched, "d", 1, 19.5, 125) == STOP


def test_a_nondominated_trial_continues_though_worst_of_the_rung_on_one_objective():
    sched = scheduler(reduction_factor=2)
    for name, psnr, swd in [("a", 20, 100), ("b", 21, 90), ("c", 22, 80)]:
        report(sched, name, 1, psnr, swd)
    # d has the lowest PSNR of the rung (ASHA on PSNR would stop it) but the best swd: c and d are the front.
    assert all(v[0] > 15 for v in sched.recorded(1).values())
    assert report(sched, "d", 1, 15, 10) == CONTINUE
    assert set(sched.promotable(1)) == {"c", "d"}


def test_the_promoted_fraction_is_one_over_the_reduction_factor():
    sched = scheduler(max_t=100, reduction_factor=3)
    rng_values = [((i * 37) % 29, (i * 53) % 31) for i in range(30)]
    for n, (psnr, swd) in enumerate(rng_values, start=1):
        decision = report(sched, f"t{n}", 1, psnr, swd)
        promotable = sched.promotable(1)
        assert len(promotable) == math.ceil(n / 3)
        # Asynchronous: a trial continues iff it is in the quota the moment it arrives.
        assert (decision == CONTINUE) == (f"t{n}" in promotable)
        # The quota is the best of the rung: no trial outside it is in an earlier front than one inside.
        ids = list(sched.recorded(1))
        front_of = {ids[i]: f for f, front in enumerate(nondominated_fronts(list(sched.recorded(1).values()), MODES))
                    for i in front}
        outside = [t for t in ids if t not in promotable]
        if outside:
            assert max(front_of[t] for t in promotable) <= min(front_of[t] for t in outside)


def test_a_trial_is_judged_once_per_rung_at_the_highest_rung_it_crossed():
    sched = scheduler(max_t=27)  # rungs 1, 3, 9
    report(sched, "a", 1, 30, 10)
    assert report(sched, "b", 1, 29, 11) == STOP
    assert report(sched, "a", 2, 1, 1000) == CONTINUE  # judged at rung 1 already; rung 3 not reached
    # A trial that skips rungs (it resumed past them) is judged at the highest one it reached.
    assert report(sched, "c", 5, 10, 50) == CONTINUE
    assert "c" in sched.recorded(3) and "c" not in sched.recorded(1)


def test_the_last_result_of_a_trial_counts_at_its_rung():
    sched = scheduler()
    sched.on_trial_complete(None, trial("a"), {"epoch": 1, "psnr": 30, "swd": 10})
    assert sched.recorded(1) == {"a": (30.0, 10.0)}
    assert report(sched, "b", 1, 20, 20) == STOP  # a, which ended at the rung, dominates it
    sched.on_trial_complete(None, trial("c"), {"epoch": 9, "psnr": 40, "swd": 1})  # at max_t: no rung
    assert "c" not in sched.recorded(1) and "c" not in sched.recorded(3)


@pytest.mark.parametrize("result", [
    {"psnr": math.nan, "swd": 10},
    {"psnr": 30, "swd": math.inf},
    {"swd": 10},  # psnr missing
    {"psnr": "n/a", "swd": 10},
    {"psnr": 30, "swd": 10, "diverged": 1},
])
def test_diverged_nan_and_missing_objectives_stop_and_rank_last(result):
    sched = scheduler(grace_period=3, max_t=27)
    # Before the grace period: nothing left to train for.
    assert sched.on_trial_result(None, trial("early"), {"epoch": 1, **result}) == STOP
    # First at a rung, where any finite trial would continue.
    assert sched.on_trial_result(None, trial("x"), {"epoch": 3, **result}) == STOP
    assert not all(math.isfinite(v) for v in sched.recorded(3)["x"])
    # It counts at the rung as the worst: any finite trial is ahead of it.
    assert report(sched, "y", 3, 1, 1e9) == CONTINUE
    assert sched.promotable(3) == ["y"]


def test_a_finite_diverged_report_is_worst_whatever_its_values():
    sched = scheduler()
    assert sched.objective_vector({"psnr": 99.0, "swd": 0.0, "diverged": 1})[0] != 99.0
    assert sched.objective_vector({"psnr": 99.0, "swd": 0.0, "diverged": 0}) == (99.0, 0.0)


# ---------------------------------------------------------------- Tune's API, pickling, bad arguments


def test_search_properties_accept_nothing_or_its_own_objective():
    sched = scheduler()
    assert sched.set_search_properties(None, None)
    assert sched.set_search_properties("swd", "min")
    assert not sched.set_search_properties("swd", "max")
    assert not sched.set_search_properties("loss", "min")


def test_debug_string_names_the_rungs():
    sched = scheduler()
    for name, psnr, swd in [("a", 20, 100), ("b", 22, 120), ("c", 19, 130), ("d", 21, 90)]:
        report(sched, name, 1, psnr, swd)
    # a continues (first); b stops (quota 1, a first among equals); c is dominated; d dominates a and joins b
    # on the front, within the quota of 2.
    text = sched.debug_string()
    assert text.startswith("Using MultiObjectiveASHA: num_stopped=2")
    assert "epoch 1: 4 recorded, 2 non-dominated, 2 promotable" in text
    assert "epoch 3: 0 recorded" in text


def test_a_pickled_scheduler_decides_as_the_original(tmp_path):
    sched = scheduler(reduction_factor=2)
    for name, psnr, swd in [("a", 20, 100), ("b", 22, 120), ("c", 19, 130)]:
        report(sched, name, 1, psnr, swd)
    copy = round_trip(sched)  # as Tuner.restore gets it from tuner.pkl
    saved = tmp_path / "scheduler.pkl"
    sched.save(str(saved))
    restored = scheduler(reduction_factor=2)
    restored.restore(str(saved))
    for other in (copy, restored):
        assert other.recorded(1) == sched.recorded(1)
        assert other.debug_string() == sched.debug_string()
    later = [("d", 1, 21, 90), ("e", 1, 18, 140), ("a", 3, 20, 100), ("b", 3, 25, 60)]
    decisions = [[report(s, *args) for args in later] for s in (sched, copy, restored)]
    assert decisions[0] == decisions[1] == decisions[2]
    assert STOP in decisions[0] and CONTINUE in decisions[0]


def test_a_saved_state_that_names_a_class_or_a_function_is_refused(tmp_path):
    saved = tmp_path / "scheduler.pkl"
    saved.write_bytes(pickle.dumps({"_num_stopped": __import__("collections").OrderedDict()}))
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict is not plain data"):
        scheduler().restore(str(saved))
    # os.system, not print: a process that has run Ray has print swapped for Ray's own (tqdm_ray.safe_print).
    saved.write_bytes(pickle.dumps({"_num_stopped": os.system}))
    with pytest.raises(pickle.UnpicklingError, match=f"{os.system.__module__}.system is not plain data"):
        scheduler().restore(str(saved))


@pytest.mark.parametrize("overrides, message", [
    ({"metrics": []}, "at least one metric"),
    ({"modes": ["max"]}, "2 metrics"),
    ({"metrics": ["psnr", "psnr"]}, "twice"),
    ({"modes": ["max", "down"]}, "mode 'down'"),
    ({"max_t": 0}, "max_t must be >= 1"),
    ({"grace_period": 10}, "grace_period must be between 1 and max_t"),
    ({"reduction_factor": 1}, "reduction_factor must be an integer >= 2"),
    ({"reduction_factor": 2.5}, "reduction_factor must be an integer >= 2"),
])
def test_bad_arguments_are_one_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        scheduler(**overrides)


# ---------------------------------------------------------------- a real Tune run


# Six trials in a chain (each dominated by the one before) and two front trials that dominate all six but
# not each other. The searcher hands them out in this order (the chain first, the front last), two trials
# at a time on 2 CPUs.
CHAIN = [{"name": f"d{i}", "fidelity": 1.0 - 0.1 * i, "error": 1.0 + 0.1 * i} for i in range(1, 7)]
FRONT = [{"name": "f1", "fidelity": 2.0, "error": 0.5}, {"name": "f2", "fidelity": 1.5, "error": 0.2}]
NAMES = [p["name"] for p in CHAIN + FRONT]
EPOCHS = 4


def named_point(trial):
    """The searcher's define-by-run space (module level: Ray's OptunaSearch.save pickles it by reference)."""
    trial.suggest_categorical("name", NAMES)


@pytest.mark.slow
@pytest.mark.ray
def test_a_tune_run_stops_the_dominated_trials_and_keeps_the_front(tmp_path):
    """With reduction factor 2 and rungs at epochs 1 and 2, whatever the timing of the two concurrent trials:
    d4-d6 reach rung 1 behind at least two chain trials that dominate them and stop there; f1 and f2 reach
    it behind at least five dominated trials and are the front, so they are promoted at both rungs. The
    searcher records the stopped trials as pruned, and a restored experiment continues its study."""
    import time

    import ray
    from ray import tune

    from raysearch.searcher import StudySearch, make_sampler
    from raysearch.study import open_study

    points = {p["name"]: p for p in CHAIN + FRONT}

    def two_objective_trainable(config):  # defined here: cloudpickle ships it by value to Ray's workers
        point = points[config["name"]]
        for epoch in range(1, EPOCHS + 1):
            time.sleep(0.1)
            tune.report({"fidelity": point["fidelity"], "error": point["error"], "epoch": epoch})

    metrics, modes = ["fidelity", "error"], ["max", "min"]
    journal = tmp_path / "mo" / "optuna.log"
    search = StudySearch(named_point, metrics=metrics, modes=modes, journal_path=journal, study_name="mo",
                         max_epochs=EPOCHS, sampler=make_sampler("random", seed=0),
                         points_to_evaluate=[{"name": name} for name in NAMES])
    sched = MultiObjectiveASHA(time_attr="epoch", metrics=metrics, modes=modes, max_t=EPOCHS, grace_period=1,
                               reduction_factor=2)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            two_objective_trainable,
            tune_config=tune.TuneConfig(search_alg=search, scheduler=sched, num_samples=len(NAMES),
                                        reuse_actors=True),
            run_config=tune.RunConfig(name="mo", storage_path=str(tmp_path), verbose=0),
        )
        results = tuner.fit()
        assert not results.errors
        epochs = {r.config["name"]: r.metrics["epoch"] for r in results}
        assert sorted(epochs) == sorted(NAMES)
        assert epochs["f1"] == EPOCHS and epochs["f2"] == EPOCHS
        assert epochs["d4"] == epochs["d5"] == epochs["d6"] == 1
        stopped = {name for name, epoch in epochs.items() if epoch < EPOCHS}
        assert stopped and all(name.startswith("d") for name in stopped)

        study = open_study(journal, "mo")
        states = {t.params["name"]: t.state.name for t in study.get_trials()}
        assert states == {name: "PRUNED" if name in stopped else "COMPLETE" for name in NAMES}
        assert {t.params["name"] for t in study.best_trials} == {"f1", "f2"}

        # tuner.pkl holds both; Tune unpickles them and restores the searcher from its checkpoint.
        restored = tune.Tuner.restore(str(tmp_path / "mo"), two_objective_trainable, resume_unfinished=True)
        assert {r.config["name"]: r.metrics["epoch"] for r in restored.fit()} == epochs
        assert len(open_study(journal, "mo").get_trials()) == len(NAMES)
    finally:
        ray.shutdown()
