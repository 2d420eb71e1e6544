"""The classical fills wherever a result is read: the search's ranking floor and table, TensorBoard's
reference runs, and `raysearch.train`'s gap to the best fill. No Ray: the views are called directly,
with `baselines_for` replaced by fixed figures (tests/test_baselines.py checks the figures themselves)."""

import io
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch.constants import score_key
from raysearch import baselines as baselines_module
from raysearch.objectives import Constraint
from raysearch.report import write_report
from raysearch.rows import BASELINE_STATUS, search_constraints
from raysearch.spaces import load_space
from raysearch.summaries import BASELINE_RUN_PREFIX, write_baseline_runs
from raysearch.train import against_best_fill, describe_against_best_fill

METRICS = ("val/mse", "val/psnr", "val/ssim", "val/seam", "val/swd")


def figures(psnr: float, swd: float) -> dict[str, float]:
    return {"val/mse": 0.01, "val/psnr": psnr, "val/ssim": 0.5, "val/seam": 0.1, "val/swd": swd}


FIXED = {"mean": figures(15.0, 130.0), "harmonic": figures(20.0, 120.0), "telea": figures(19.0, 110.0),
         "navier_stokes": figures(18.5, 115.0)}


@pytest.fixture
def fixed_baselines(monkeypatch):
    """baselines_for returns FIXED and records what it was asked for."""
    calls = []

    def fake(data, seed):
        calls.append((data, seed))
        return FIXED

    monkeypatch.setattr(baselines_module, "baselines_for", fake)
    return calls


def test_gan_spaces_rank_against_the_best_classical_fill(fixed_baselines):
    gan = load_space("wgan", ["train.seed=7"])
    # The best fill's PSNR (harmonic 20.0) less 1 dB.
    assert search_constraints(gan) == (Constraint("val/psnr", ">=", 19.0),)
    assert fixed_baselines == [(gan.config.data, 7)]  # the search's own data and metric seed
    assert search_constraints(load_space("l2")) == ()  # fidelity is l2's own objective: no floor


def _result(name, params, history):
    frame = pd.DataFrame(history)
    last = {**history[-1], "done": True, score_key("val/psnr"): history[-1]["val/psnr"]}
    return SimpleNamespace(path=f"/x/{name}", config=params, metrics=last, metrics_dataframe=frame, error=None)


def test_the_final_table_shows_the_fills_unranked_and_never_picks_one(fixed_baselines, tmp_path):
    space = load_space("l2")  # val/psnr, max: every fill (15-20 dB) beats the trials, were they ranked
    settings = space.tune
    epochs = settings.max_epochs
    results = [_result(f"l2_{i}", {"optim.generator_lr": lr}, [{"epoch": e, "val/psnr": psnr} for e in range(1, epochs + 1)])
               for i, (lr, psnr) in enumerate(((1e-3, 12.0), (3e-4, 11.0)))]
    out = io.StringIO()
    rows = write_report(results, space, settings, str(tmp_path), out=out)
    assert [r.trial for r in rows] == ["l2_0", "l2_1"]  # the returned ranking holds trials only
    lines = out.getvalue().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header + 1].split()[:2] == ["1", "l2_0"] and lines[header + 2].split()[:2] == ["2", "l2_1"]
    assert set(lines[header + 3]) == {"-"}  # a rule between the trials and the fills
    fills = [line.split() for line in lines[header + 4: header + 8]]
    assert [cells[1] for cells in fills] == [f"classical:{name}" for name in FIXED]
    for cells, name in zip(fills, FIXED):
        assert cells[0] == "-" and cells[-1] == BASELINE_STATUS  # no rank
        assert float(cells[3]) == FIXED[name]["val/psnr"]  # score and final: the fill's metric
    best = yaml.safe_load((tmp_path / "best_config.yaml").read_text())
    assert "l2_0" in best["description"]


def test_reference_runs_are_flat_lines_beside_the_trials(tmp_path):
    runs = write_baseline_runs(str(tmp_path / "tensorboard"), FIXED, epochs=3)
    assert sorted(runs) == sorted(str(tmp_path / "tensorboard" / f"{BASELINE_RUN_PREFIX}{name}") for name in FIXED)
    for name, values in FIXED.items():
        events = EventAccumulator(str(tmp_path / "tensorboard" / f"{BASELINE_RUN_PREFIX}{name}"))
        events.Reload()
        for metric in METRICS:
            for tag in (metric, score_key(metric)):
                scalars = events.Scalars(tag)
                assert [s.step for s in scalars] == [1, 2, 3], tag
                assert all(s.value == pytest.approx(values[metric]) for s in scalars), (name, tag)


def test_train_says_how_far_above_or_below_the_best_fill():
    above = {"val/psnr": 20.48, "epoch": 3}
    above.update(against_best_fill(above, FIXED))
    assert above["best_fill"] == "harmonic" and above["best_fill/val/psnr"] == 20.0
    assert above["val/psnr_over_best_fill"] == pytest.approx(0.48)
    assert describe_against_best_fill(above) == (
        "val/psnr 20.48 dB: +0.48 dB above the best classical fill (harmonic 20.00 dB)")
    below = {"val/psnr": 17.5}
    below.update(against_best_fill(below, FIXED))
    assert "-2.50 dB below the best classical fill (harmonic 20.00 dB)" in describe_against_best_fill(below)
    # A diverged run has no finite PSNR: the best fill is still named, without a gap.
    nan = against_best_fill({"val/psnr": float("nan")}, FIXED)
    assert nan == {"best_fill": "harmonic", "best_fill/val/psnr": 20.0}


def test_analyze_ranks_a_gan_experiment_with_the_searchs_floor(fixed_baselines, tmp_path):
    from raysearch.experiment import open_experiment
    from raysearch.tune import remember_experiment

    space = load_space("wgan", ["train.seed=5"])
    remember_experiment(str(tmp_path / "gan"), space, ["train.seed=5"], space.tune)
    fixed_baselines.clear()
    floor = (Constraint("val/psnr", ">=", 19.0),)  # the best fill's PSNR (harmonic 20.0) less 1 dB
    experiment = open_experiment(str(tmp_path / "gan"))
    assert experiment.fills() == (FIXED, floor)
    assert fixed_baselines == [(space.config.data, 5)]  # the data and seed of the record's base:

    # An experiment whose record has no base: (an older raysearch) is still analysed, without the fills.
    record = tmp_path / "gan" / "raysearch_experiment.yaml"
    written = yaml.safe_load(record.read_text())
    del written["base"]
    record.write_text(yaml.safe_dump(written))
    notes = []
    # The floor as the search resolved it is in the record: it still ranks the trials.
    assert open_experiment(str(tmp_path / "gan")).fills(notes.append) == (None, floor)
    assert notes == [f"note: no classical fills: {tmp_path / 'gan'}/raysearch_experiment.yaml: has no base: config "
                     "(an experiment from an older raysearch)"]
    del written["constraints"]  # older still: neither fills nor constraints
    record.write_text(yaml.safe_dump(written))
    assert open_experiment(str(tmp_path / "gan")).fills(lambda note: None) == (None, ())


def test_reference_runs_reach_a_storage_uri(tmp_path):
    write_baseline_runs(f"file://{tmp_path}/tensorboard", {"harmonic": FIXED["harmonic"]}, epochs=2)
    events = EventAccumulator(str(tmp_path / "tensorboard" / f"{BASELINE_RUN_PREFIX}harmonic"))
    events.Reload()
    assert [s.value for s in events.Scalars("score/val/swd")] == [120.0, 120.0]
