"""StudySearch driven through Ray's Searcher API as Tune drives it (no Ray cluster), then read back from the
journal with plain Optuna and through optuna-dashboard's HTTP API: states, values, metric names,
constraints, resume without duplicates, seeded determinism."""

import json
import math
import pickle
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from raysearch.objectives import Constraint
from raysearch.searcher import StudySearch, make_sampler
from raysearch.study import open_study, study_mismatch
from tests.conftest import free_ports, tail
from tests.pickles import unpickle

METRICS, MODES = ["score/val/psnr", "score/val/swd"], ["max", "min"]
MAX_EPOCHS = 4
BASE = {"lr": 0.01, "width": 32, "loss": "l2"}


def space(trial):
    """A define-by-run space with a conditional parameter, like the project's spaces."""
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    trial.suggest_int("width", 8, 64)
    if trial.suggest_categorical("loss", ["l2", "gan"]) == "gan":
        trial.suggest_float("adv", 1e-3, 1e-1, log=True)


def searcher(tmp_path, *, metrics=METRICS, modes=MODES, seed=0, kind="tpe", name="s", constraints=(), base=True):
    sampler = make_sampler(kind, seed=seed, n_startup_trials=2)
    return StudySearch(space, metrics=metrics, modes=modes, journal_path=tmp_path / "exp" / "optuna.log",
                       study_name=name, max_epochs=MAX_EPOCHS, sampler=sampler,
                       points_to_evaluate=[BASE] if base else None, constraints=constraints)


def result(epoch, psnr, swd, **extra):
    return {"epoch": epoch, "score/val/psnr": psnr, "score/val/swd": swd, "diverged": 0, **extra}


def train(search, trial_id, epochs, *, psnr=20.0, swd=100.0, last=None, **extra):
    """What Tune does for a trial: suggest, one result per epoch, then on_trial_complete with the last result
    (the result a scheduler stopped on reaches on_trial_complete, not on_trial_result)."""
    config = search.suggest(trial_id)
    results = [result(e, psnr + e, swd - e, **extra) for e in range(1, epochs + 1)]
    for r in results[:-1]:
        search.on_trial_result(trial_id, r)
    search.on_trial_complete(trial_id, result=last or results[-1])
    return config


def trials_by_ray_id(study):
    return {t.user_attrs.get("ray_trial_id"): t for t in study.get_trials()}


# ---------------------------------------------------------------- states, values, constraints


def test_trials_enter_the_study_complete_pruned_or_failed(tmp_path):
    search = searcher(tmp_path, constraints=[Constraint("val/ssim", ">=", 0.5)])
    first = train(search, "done", MAX_EPOCHS, **{"val/ssim": 0.7})
    train(search, "stopped", 2, **{"val/ssim": 0.6})
    train(search, "diverged", 3, last={"epoch": 3, "diverged": 1, "score/val/psnr": 0.0, "score/val/swd": 1e4,
                                        "val/ssim": -1.0})
    train(search, "nan", MAX_EPOCHS, last=result(MAX_EPOCHS, math.nan, 50.0, **{"val/ssim": 0.7}))
    search.suggest("crashed")
    search.on_trial_complete("crashed", error=True)
    # Best on both objectives, but its constrained metric is below the bound: infeasible.
    train(search, "infeasible", MAX_EPOCHS, psnr=40.0, swd=1.0, **{"val/ssim": 0.3})

    study = open_study(tmp_path / "exp" / "optuna.log", "s")
    trials = trials_by_ray_id(study)
    assert first == BASE and trials["done"].number == 0  # the base config first
    assert {k: t.state for k, t in trials.items()} == {
        "done": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "diverged": TrialState.FAIL,
        "nan": TrialState.FAIL, "crashed": TrialState.FAIL, "infeasible": TrialState.COMPLETE}
    assert trials["done"].values == [20.0 + MAX_EPOCHS, 100.0 - MAX_EPOCHS]
    assert trials["stopped"].values is None
    assert trials["stopped"].user_attrs["values_at_stop"] == {"score/val/psnr": 22.0, "score/val/swd": 98.0}
    assert trials["stopped"].user_attrs["epoch"] == 2 and trials["stopped"].user_attrs["ended"] == "stopped early"
    assert trials["diverged"].user_attrs["ended"] == "diverged" and trials["diverged"].values is None
    assert trials["nan"].user_attrs["ended"] == "missing or non-finite: score/val/psnr"
    assert trials["crashed"].user_attrs["ended"] == "error"
    name = "val/ssim >= 0.5"
    assert trials["done"].constraints == {name: pytest.approx(-0.2)} and trials["done"].user_attrs["feasible"]
    assert trials["stopped"].constraints == {name: pytest.approx(-0.1)}
    assert trials["infeasible"].constraints == {name: pytest.approx(0.2)}
    assert not trials["infeasible"].user_attrs["feasible"]
    assert trials["diverged"].constraints == {}
    # Optuna's own front honours the constraint: the infeasible trial dominates "done" but is left out.
    assert [t.user_attrs["ray_trial_id"] for t in study.best_trials] == ["done"]
    assert study.metric_names == METRICS
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.user_attrs == {"objectives": dict(zip(METRICS, MODES)), "constraints": [name],
                                "max_epochs": MAX_EPOCHS}


def test_one_objective_keeps_intermediate_values_and_a_pruned_trial_its_last(tmp_path):
    search = searcher(tmp_path, metrics=["score/val/psnr"], modes=["max"])
    train(search, "done", MAX_EPOCHS)
    train(search, "stopped", 2)
    trials = trials_by_ray_id(open_study(tmp_path / "exp" / "optuna.log", "s"))
    assert trials["done"].state == TrialState.COMPLETE and trials["done"].value == 24.0
    assert trials["done"].intermediate_values == {1: 21.0, 2: 22.0, 3: 23.0}  # the last came with completion
    # Stopped at epoch 2: that result never reached on_trial_result, yet it is the pruned trial's value.
    assert trials["stopped"].state == TrialState.PRUNED
    assert trials["stopped"].intermediate_values == {1: 21.0, 2: 22.0}
    assert trials["stopped"].value == 22.0


def test_a_trial_that_never_reported_is_pruned_without_values(tmp_path):
    search = searcher(tmp_path)
    search.suggest("removed")
    search.on_trial_complete("removed")  # Tune: a PENDING trial removed
    trial = trials_by_ray_id(open_study(tmp_path / "exp" / "optuna.log", "s"))["removed"]
    assert trial.state == TrialState.PRUNED and trial.values is None and trial.user_attrs["ended"] == "no result"


# ---------------------------------------------------------------- resume


def test_a_restored_searcher_continues_the_same_study_without_duplicates(tmp_path):
    search = searcher(tmp_path)
    at_start = pickle.dumps(search)  # what Tune keeps in tuner.pkl when the Tuner is built
    train(search, "a", MAX_EPOCHS)
    search.suggest("b")  # running at the checkpoint
    search.suggest("errored")
    search.on_trial_complete("errored", error=True)
    checkpoint = tmp_path / "searcher-state.pkl"
    search.save(str(checkpoint))  # Tune's experiment checkpoint
    search.suggest("lost")  # asked after the checkpoint; the driver then dies
    search.on_trial_complete("a", result=result(MAX_EPOCHS, 1.0, 1.0))  # noise after the checkpoint

    restored = unpickle(at_start, __name__)  # the space function is this module's
    restored.restore(str(checkpoint))
    restored.on_trial_complete("b", result=result(MAX_EPOCHS, 30.0, 40.0))  # b resumes and finishes
    restored.on_trial_complete("a", result=result(MAX_EPOCHS, 2.0, 2.0))  # Tune resumed a finished trial
    restored.on_trial_complete("errored", result=result(MAX_EPOCHS, 25.0, 60.0))  # resume_errored
    train(restored, "c", MAX_EPOCHS)

    study = open_study(tmp_path / "exp" / "optuna.log", "s")
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(6))
    states = [(t.user_attrs.get("ray_trial_id"), t.state.name) for t in trials]
    assert states == [("a", "COMPLETE"), ("b", "COMPLETE"), ("errored", "FAIL"), ("lost", "FAIL"),
                      ("errored", "COMPLETE"), ("c", "COMPLETE")]
    assert trials[0].values == [24.0, 96.0]  # the first record of a is kept
    assert trials[1].values == [30.0, 40.0]
    assert trials[4].user_attrs["replaces_failed_trial"] == 2 and trials[4].params == trials[2].params
    assert [t.params for t in trials].count(BASE) == 1  # the base config was not enqueued again
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_a_restore_without_its_journal_is_one_clear_error(tmp_path):
    search = searcher(tmp_path)
    at_start = pickle.dumps(search)
    checkpoint = tmp_path / "searcher-state.pkl"
    search.save(str(checkpoint))
    (tmp_path / "exp" / "optuna.log").unlink()
    with pytest.raises(FileNotFoundError, match="optuna.log: the search's Optuna journal is gone"):
        unpickle(at_start, __name__).restore(str(checkpoint))


def test_a_second_search_on_an_existing_study_is_refused(tmp_path):
    searcher(tmp_path)
    with pytest.raises(ValueError, match="a study named 's' exists already"):
        searcher(tmp_path)
    searcher(tmp_path, name="other")  # another study in the same journal is fine


def test_study_mismatch_names_what_differs(tmp_path):
    searcher(tmp_path)
    journal = tmp_path / "exp" / "optuna.log"
    assert study_mismatch(journal, "s", METRICS, MODES) is None
    assert "not {'score/val/psnr': 'max', 'score/val/swd': 'max'}" in study_mismatch(journal, "s", METRICS,
                                                                                    ["max", "max"])
    assert "no study named 'x'" in study_mismatch(journal, "x", METRICS, MODES)
    assert "no Optuna journal" in study_mismatch(tmp_path / "none.log", "s", METRICS, MODES)


# ---------------------------------------------------------------- seeds and samplers


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_the_same_seed_gives_the_same_suggestions(tmp_path, kind):
    def run(seed, folder):
        search = searcher(tmp_path / folder, seed=seed, kind=kind, base=False)
        configs = []
        for i in range(6):
            config = search.suggest(f"t{i}")
            configs.append(config)
            # Values that depend on the config, so TPE's model depends on what it suggested.
            search.on_trial_complete(f"t{i}", result=result(MAX_EPOCHS, 10 * config["lr"], config["width"]))
        return configs

    first = run(1, "a")
    assert first == run(1, "b")
    assert first != run(2, "c")


def test_bad_arguments_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="operator '>'"):
        Constraint("val/psnr", ">", 1.0)
    with pytest.raises(ValueError, match="bound nan"):
        Constraint("val/psnr", ">=", math.nan)
    with pytest.raises(ValueError, match="sampler 'grid'"):
        make_sampler("grid", seed=0)
    with pytest.raises(ValueError, match="2 metrics"):
        searcher(tmp_path, modes=["max"])
    with pytest.raises(ValueError, match="mode 'up'"):
        searcher(tmp_path, modes=["max", "up"])


# ---------------------------------------------------------------- optuna-dashboard


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_optuna_dashboard_reads_the_study(tmp_path):
    search = searcher(tmp_path, constraints=[Constraint("score/val/psnr", ">=", 21.0)])
    train(search, "done", MAX_EPOCHS)
    train(search, "stopped", 1)
    train(search, "diverged", 2, last={"epoch": 2, "diverged": 1, "score/val/psnr": 0.0, "score/val/swd": 1e4})
    journal = tmp_path / "exp" / "optuna.log"
    port = free_ports(1)[0]
    log = tmp_path / "dashboard.log"
    command = [str(Path(sys.executable).parent / "optuna-dashboard"), str(journal), "--host", "127.0.0.1",
               "--port", str(port)]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        studies = None
        while studies is None:
            assert server.poll() is None, f"optuna-dashboard exited:\n{tail(log)}"
            assert time.monotonic() < deadline, f"optuna-dashboard never answered:\n{tail(log)}"
            try:
                studies = get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            except OSError:
                time.sleep(0.2)
        [summary] = [s for s in studies if s["study_name"] == "s"]
        assert summary["directions"] == ["maximize", "minimize"]
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}")
        assert detail["objective_names"] == METRICS
        assert [t["state"] for t in detail["trials"]] == ["Complete", "Pruned", "Fail"]
        assert detail["trials"][0]["values"] == [24.0, 96.0]
        assert [t["number"] for t in detail["best_trials"]] == [0]
        attrs = {a["key"]: a["value"] for a in detail["trials"][1]["user_attrs"]}
        assert attrs["ray_trial_id"] == "stopped" and attrs["ended"] == "stopped early"
    finally:
        server.terminate()
        server.wait(timeout=30)
