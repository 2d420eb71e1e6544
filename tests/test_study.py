"""Where a search's Optuna study lives (raysearch.study): beside a local experiment, or in the local cache with a
copy uploaded into a URI experiment and fetched back on --resume; a --resume whose study has other objectives
is one line before Ray starts."""

from __future__ import annotations

import pytest
import yaml

from raysearch import tune
from raysearch.searcher import StudySearch, make_sampler
from raysearch.spaces import load_space
from raysearch.study import STUDY_FILE, fetch_journal, local_journal, open_study, publish_journal


def make_study(journal, name: str, metrics: list[str], modes: list[str]) -> None:
    """A study as a search makes it (its searcher builds it in the journal)."""
    StudySearch(lambda trial: trial.suggest_float("x", 0.0, 1.0), metrics=metrics, modes=modes,
                journal_path=journal, study_name=name, max_epochs=2, sampler=make_sampler("random", seed=0))


def test_a_local_experiment_keeps_its_study_beside_its_trials(tmp_path):
    assert local_journal(str(tmp_path / "wgan-1")) == tmp_path / "wgan-1" / STUDY_FILE
    assert fetch_journal(str(tmp_path / "wgan-1")) == tmp_path / "wgan-1" / STUDY_FILE


def test_a_uri_experiment_keeps_it_locally_uploads_it_and_fetches_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache"))
    experiment = f"file://{tmp_path}/bucket/wgan-1"
    local = local_journal(experiment)
    assert local.parent.parent == tmp_path / "cache" / "studies" and local.name == STUDY_FILE
    make_study(local, "wgan-1", ["score/val/psnr"], ["max"])
    assert publish_journal(experiment).endswith(f"wgan-1/{STUDY_FILE}")
    assert (tmp_path / "bucket" / "wgan-1" / STUDY_FILE).read_bytes() == local.read_bytes()
    local.unlink()  # resumed on a machine without the driver's copy
    assert fetch_journal(experiment) == local and local.is_file()
    assert open_study(local, "wgan-1").metric_names == ["score/val/psnr"]


def test_a_resume_whose_study_has_other_objectives_is_one_line(tmp_path, capsys):
    space = load_space("wgan")
    experiment = tmp_path / "wgan-1"
    tune.remember_experiment(str(experiment), space, [], space.tune, constraints=())
    make_study(experiment / STUDY_FILE, "wgan-1", ["score/val/swd"], ["min"])  # as an older space searched it
    before = {p.name: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    code = tune.main(["wgan", "--resume", "--name", "wgan-1", "--storage", str(tmp_path), "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: --resume: ") and "score/val/swd" in err[0] and "score/val/swd_band" in err[0]
    assert {p.name: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before  # nothing written


def test_the_record_holds_the_objectives_constraints_and_study(tmp_path):
    space = load_space("realism")
    tune.remember_experiment(str(tmp_path / "realism-1"), space, [], space.tune, constraints=space.bounds(
        {"harmonic": {"val/psnr": 17.4, "val/swd_band": 437.0}, "mean": {"val/psnr": 15.4, "val/swd_band": 493.0}}))
    record = yaml.safe_load((tmp_path / "realism-1" / "raysearch_experiment.yaml").read_text())
    assert record["objectives"] == {"val/psnr": "max", "val/swd_band": "min"}
    assert record["constraints"] == [{"metric": "val/psnr", "op": ">=", "bound": pytest.approx(16.4),
                                      "stated": "val/psnr >= best fill - 1"}]
    assert record["study"] == {"name": "realism-1", "journal": STUDY_FILE}
