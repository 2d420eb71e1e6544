"""The answer of a search over several objectives: the front of its feasible finished trials (rows.rank_rows,
front.py), its knee as best_config.yaml and one config per member in front/, the classical fills on the same
axes, the hypervolume; `analyze` prints it and draws the plane (--front), `inpaint --pick` takes a member."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch import analyze, inpaint
from raysearch.config import load_config
from raysearch.experiment import ExperimentError
from raysearch.front import fills_beaten, format_front, read_front
from raysearch.frontier import hypervolume
from raysearch.objectives import Constraint, Objective
from raysearch.report import write_best_config, write_front_configs
from raysearch.rows import TrialRow, baseline_rows, rank_rows
from raysearch.spaces import load_space
from tests.fake_tune import FakeTune, params

OBJECTIVES = (Objective("val/psnr", "max"), Objective("val/swd_band", "min"))
FLOOR = (Constraint("val/psnr", ">=", 15.0),)
FILLS = {"mean": {"val/psnr": 14.0, "val/swd_band": 500.0}, "harmonic": {"val/psnr": 16.0, "val/swd_band": 440.0},
         "telea": {"val/psnr": 15.5, "val/swd_band": 200.0}}


def row(name, psnr, swd, status="finished", epochs=10):
    return TrialRow(trial=name, params={"objective.adv_weight": 1.0}, score=psnr, final=psnr, best=psnr,
                    epochs=epochs, status=status, scores={"val/psnr": psnr, "val/swd_band": swd})


def ranked():
    return rank_rows([
        row("faithful", 16.5, 420.0),  # the front: best PSNR
        row("realistic", 15.6, 250.0),  # the front: best swd_band
        row("between", 16.3, 280.0),  # the front: the knee of the three
        row("dominated", 15.8, 400.0),  # beaten on both by `between`
        row("too_blurry_to_count", 14.2, 100.0),  # below the PSNR floor: off the front whatever its realism
        row("stopped_early", 17.0, 200.0, status="stopped", epochs=3),  # early scores: pruned, never on the front
        row("nan", 0.0, 1e4, status="diverged"),
    ], OBJECTIVES, FLOOR)


def test_the_front_is_the_feasible_finished_trials_no_other_beats_on_both_and_comes_first():
    rows = ranked()
    assert [r.trial for r in rows[:3]] == ["faithful", "between", "realistic"]  # the front, by the first objective
    assert {r.trial for r in rows if r.front == 0} == {"faithful", "between", "realistic"}
    by_name = {r.trial: r for r in rows}
    assert by_name["dominated"].front == 1
    assert by_name["too_blurry_to_count"].front is None and by_name["stopped_early"].front is None
    assert [r.trial for r in rows[-3:]] == ["stopped_early", "too_blurry_to_count", "nan"]


def test_the_knee_the_hypervolume_and_the_fills_on_the_same_axes():
    front = read_front(ranked(), OBJECTIVES, FILLS)
    assert front.knee.trial == "between"
    # The reference: the worst fill on each axis (the mean fill on both here).
    assert front.reference == {"val/psnr": ("mean", 14.0), "val/swd_band": ("mean", 500.0)}
    points = [[16.5, 420.0], [16.3, 280.0], [15.6, 250.0]]
    assert front.hypervolume == pytest.approx(hypervolume(points, ["max", "min"], [14.0, 500.0]))
    # The staircase by hand, slice by slice of swd_band: 2.5 x 80 + 2.3 x 140 + 1.6 x 30.
    assert front.hypervolume == pytest.approx(2.5 * 80 + 2.3 * 140 + 1.6 * 30)
    beaten = fills_beaten(front, FILLS)
    assert beaten["mean"] == ["faithful", "between", "realistic"]
    assert beaten["harmonic"] == ["faithful", "between"] and beaten["telea"] == []
    text = format_front(ranked(), front, baseline_rows(FILLS, "val/psnr"))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["rank", "front", "trial"]
    assert lines[2].split()[1:3] == ["knee", "between"] and lines[1].split()[1] == "yes"
    assert "classical:telea" in text and "not beaten on every objective by any front trial" in text


def test_best_config_is_the_knee_and_front_holds_one_config_per_member(tmp_path):
    space = load_space("wgan")
    rows = [TrialRow(trial=f"wgan_{i}", params={"objective.adv_weight": w}, score=p, final=p, best=p, epochs=4,
                     status="finished", scores={"val/psnr": p, "val/swd_band": s})
            for i, (w, p, s) in enumerate([(200.0, 17.0, 400.0), (800.0, 16.6, 300.0), (2000.0, 16.0, 280.0)])]
    front = read_front(rank_rows(rows, space.objectives), space.objectives, None)
    written = write_front_configs(front, space, str(tmp_path))
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["wgan_0.yaml", "wgan_1.yaml", "wgan_2.yaml"]
    best = write_best_config(rows, space, str(tmp_path), front=front)
    assert front.knee.trial == "wgan_1"
    assert load_config(best) == load_config(str(tmp_path / "front" / "wgan_1.yaml"))
    assert load_config(best).objective.adv_weight == 800.0 and load_config(best).train.epochs == 4
    assert "the knee of the front" in yaml.safe_load(open(best))["description"]


# ---------------------------------------------------------------- analyze and inpaint on an experiment


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Three l2 trials of a space that searches PSNR against the band-keeping SWD."""
    root = tmp_path_factory.mktemp("front")
    space = root / "l2_front.yaml"
    values = yaml.safe_load(load_space("l2").path.read_text())
    values.pop("metric"), values.pop("mode")
    values["objectives"] = {"val/psnr": "max", "val/swd_band": "min"}
    values["tune"]["scheduler"] = "mo_asha"
    space.write_text(yaml.safe_dump(values, sort_keys=False))
    tune = FakeTune(root / "exp", num_samples=3, space=str(space))
    for tid, lr in (("aaaa0001", 1e-3), ("bbbb0002", 3e-3), ("cccc0003", 3e-4)):
        tune.train(tid, params(lr), epochs=2)
    return root / "exp"


def test_analyze_prints_the_front_and_draws_the_plane_into_a_png_and_tensorboard(experiment, tmp_path, capsys):
    png = tmp_path / "plane.png"
    code = analyze.main([str(experiment), "--front", str(png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Front of val/psnr (max), val/swd_band (min)" in out and "Hypervolume" in out and "knee" in out
    with Image.open(png) as image:
        assert image.size == (800, 600)
    events = EventAccumulator(str(experiment / "tensorboard" / "analysis"), size_guidance={"images": 0})
    events.Reload()
    assert "analysis/front" in events.Tags()["images"]
    code = analyze.main([str(experiment), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["objectives"] == {"val/psnr": "max", "val/swd_band": "min"}
    assert document["front"]["knee"] in document["front"]["trials"] and document["front"]["hypervolume"] >= 0


def test_inpaint_takes_the_knee_or_the_member_a_pick_names(experiment, capsys):
    document = analyze.main([str(experiment), "--json"])
    front = json.loads(capsys.readouterr().out)["front"]
    assert document == 0
    knee = inpaint.find_model(str(experiment), log=lambda line: None)
    assert knee.checkpoint.parent.name == front["knee"] and "front's knee" in knee.what
    picked = inpaint.find_model(str(experiment), log=lambda line: None, pick="best:val/psnr")
    assert picked.checkpoint.parent.name in front["trials"]
    named = inpaint.find_model(str(experiment), log=lambda line: None, pick="l2_front_bbbb0002")
    assert named.checkpoint.parent.name == "l2_front_bbbb0002"
    with pytest.raises(ExperimentError, match="--pick best:val/fid: 'val/fid' is not an objective"):
        inpaint.find_model(str(experiment), log=lambda line: None, pick="best:val/fid")


def test_front_on_a_search_of_one_objective_is_one_line(tmp_path, capsys):
    tune = FakeTune(tmp_path / "single", num_samples=1)
    tune.train("aaaa0001", params(1e-3), epochs=1)
    code = analyze.main([str(tmp_path / "single"), "--front", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--front" in err[0] and "one objective" in err[0]
