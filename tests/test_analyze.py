"""`python -m raysearch.analyze`: table, JSON, CSV, importances, grid, running experiments, URIs, errors.

The experiments here are written without running Ray: the files Tune and
Train would write (params.json, result.json lines, error.txt), Tune's
experiment state made of Tune's own `Trial` objects (read back with Ray's
`ExperimentAnalysis`), the record tune.py writes, and real checkpoints and
TensorBoard runs from `run_trial` called directly. A real search's experiment
is read in tests/test_tune.py.
"""

import csv
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch import analyze, pictures
from raysearch.checkpoint import load_checkpoint
from raysearch.baselines import BASELINE_NAMES, baselines_for, filled_images, validation_subset
from raysearch.experiment import TrialRecord, open_experiment
from raysearch.spaces import load_space
from raysearch.loop import diverged_metrics
from tests.conftest import validated_by_the_loop
from tests.fake_tune import MAX_EPOCHS, OVERRIDES, SPACE, FakeTune, params

REPO = Path(__file__).resolve().parent.parent
TILE = 64 + pictures.PADDING


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Six trials: finished (2 epochs), stopped (1), diverged, running, errored, pending."""
    root = tmp_path_factory.mktemp("tune") / "l2-test"
    tune = FakeTune(root)
    p = {
        "aaaa0001": params(1e-3, kernel=3),
        "bbbb0002": params(3e-4, kernel=5, activation="none", decay=0.95),
        "cccc0003": params(3e-3, kernel=3, decay=0.9),
        "dddd0004": params(2e-3, kernel=5),
        "eeee0005": params(1e-4, kernel=3),
        "ffff0006": params(5e-4, kernel=5),
    }
    reports = {"aaaa0001": tune.train("aaaa0001", p["aaaa0001"], epochs=2)}
    reports["bbbb0002"] = tune.train("bbbb0002", p["bbbb0002"], epochs=1)  # stopped by ASHA after 1
    # Diverged in epoch 2: its epoch-1 checkpoint stays the latest, the report carries the worst values.
    tune.train("cccc0003", p["cccc0003"], epochs=1, done=False)
    tune.result("cccc0003", {**diverged_metrics(), "epoch": 2, "diverged": 1, "diverged_epoch": 2,
                             "diverged_phase": "generator"}, done=True)
    # Running: one result, no checkpoint yet, and a half-written second line.
    tune.trial_dir("dddd0004", p["dddd0004"])
    tune.result("dddd0004", {"val/psnr": 99.0, "val/mse": 0.01, "epoch": 1, "diverged": 0})
    with open(root / f"{SPACE}_dddd0004" / "result.json", "a") as handle:
        handle.write('{"val/psnr": 12.5, "epo')
    # Errored before its first result.
    tune.trial_dir("eeee0005", p["eeee0005"])
    (root / f"{SPACE}_eeee0005" / "error.txt").write_text("Failure # 1\nRuntimeError: worker died\n")
    for tid, status in (("aaaa0001", "TERMINATED"), ("bbbb0002", "TERMINATED"), ("cccc0003", "TERMINATED"),
                        ("dddd0004", "RUNNING"), ("eeee0005", "ERROR"), ("ffff0006", "PENDING")):
        tune.state(tid, status, p[tid])
    tune.write_state()
    return {"root": root, "params": p, "reports": reports}


def run(argv, capsys):
    code = analyze.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out):
    """The table's data lines (rank, trial, ..., status) from the text output."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith("---"):  # the rule above the classical fills' rows
            break
        cells = line.split()
        rows.append({"rank": int(cells[0]), "trial": cells[1], "status": cells[-1], "epochs": int(cells[-2])})
    return rows


# ---------------------------------------------------------------- the table


def test_table_ranks_trials_with_every_status(experiment, capsys):
    code, out, err = run([experiment["root"]], capsys)
    assert code == 0, err
    rows = table_rows(out)
    status = {row["trial"]: row["status"] for row in rows}
    assert status == {"l2_aaaa0001": "finished", "l2_bbbb0002": "stopped", "l2_cccc0003": "diverged",
                      "l2_dddd0004": "running", "l2_eeee0005": "error", "l2_ffff0006": "pending"}
    order = [row["trial"] for row in rows]
    # The finished trial first; then the trials that ended early or are still going, by score (psnr is
    # maximised: the running trial's 99.0 before the stopped one); diverged; no value (pending); errors last.
    assert order == ["l2_aaaa0001", "l2_dddd0004", "l2_bbbb0002", "l2_cccc0003", "l2_ffff0006", "l2_eeee0005"]
    assert {row["trial"]: row["epochs"] for row in rows}["l2_aaaa0001"] == 2
    # The key params and both metric columns are in the header; the half-written line is skipped, with a note.
    header = next(line for line in out.splitlines() if line.startswith("rank"))
    for column in ("optim.generator_lr", "generator.kernel_size", "val/psnr score", "final", "best", "epochs", "status"):
        assert column in header
    assert "skipped 1 unreadable result.json line" in err


def test_final_and_best_come_from_the_history(experiment):
    exp = open_experiment(str(experiment["root"]))
    rows = {row.trial: row for row in exp.rows()}
    history = [r["val/psnr"] for r in experiment["reports"]["aaaa0001"]]
    assert rows["l2_aaaa0001"].final == pytest.approx(history[-1])
    assert rows["l2_aaaa0001"].best == pytest.approx(max(history))
    assert rows["l2_cccc0003"].final == diverged_metrics()["val/psnr"]
    assert rows["l2_ffff0006"].final is None and rows["l2_eeee0005"].final is None


def test_without_tunes_state_file_statuses_come_from_the_trial_files(experiment, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(experiment["root"], copy, ignore=shutil.ignore_patterns("experiment_state-*", "checkpoint_*", "tensorboard"))
    exp = open_experiment(str(copy))
    status = {t.name: t.status for t in exp.trials}
    # No state: the pending trial is unknown; done=true ends a trial; error.txt without a done result is an error.
    assert status == {"l2_aaaa0001": "finished", "l2_bbbb0002": "stopped", "l2_cccc0003": "diverged",
                      "l2_dddd0004": "running", "l2_eeee0005": "error"}
    assert all(not t.checkpoints for t in exp.trials)


def test_a_tune_state_ray_cannot_read_is_one_clear_error(experiment, tmp_path, capsys):
    # A Tune of another version, or a damaged file: never a silent empty list of trials.
    copy = tmp_path / "copy"
    shutil.copytree(experiment["root"], copy, ignore=shutil.ignore_patterns("experiment_state-*", "checkpoint_*", "tensorboard"))
    (copy / "experiment_state-2026-01-02_00-00-00.json").write_text(
        json.dumps({"trial_data": [[json.dumps({"trial_id": "aaaa0001", "status": "TERMINATED"}), "{}"]]}))
    code, out, err = run([copy], capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "experiment_state-2026-01-02_00-00-00.json" in line
    assert "cannot read this experiment state" in line and "Ray Tune" in line


def test_json_document(experiment, capsys):
    code, out, err = run([experiment["root"], "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)  # stdout is one JSON document and nothing else
    assert doc["metric"] == "val/psnr" and doc["mode"] == "max" and doc["max_epochs"] == MAX_EPOCHS
    trials = {t["trial"]: t for t in doc["trials"]}
    assert [t["rank"] for t in doc["trials"]] == list(range(1, 7))
    assert trials["l2_aaaa0001"]["checkpoints"] == [1, 2]
    psnr = {r["epoch"]: r["val/psnr"] for r in experiment["reports"]["aaaa0001"]}
    assert trials["l2_aaaa0001"]["best_checkpoint"] == max(psnr, key=psnr.get)
    assert trials["l2_cccc0003"]["status"] == "diverged" and trials["l2_cccc0003"]["diverged_phase"] == "generator"
    assert trials["l2_cccc0003"]["checkpoints"] == [1]
    assert trials["l2_dddd0004"]["checkpoints"] == [] and trials["l2_dddd0004"]["best_checkpoint"] is None
    assert trials["l2_bbbb0002"]["params"] == experiment["params"]["bbbb0002"]
    assert set(doc["importances"]) == {"method", "trials", "values", "constant", "note"}
    assert doc["importances"]["trials"] == 3  # finished, stopped and diverged
    assert doc["grid"] is None
    # The classical fills of the experiment's own data (its record's base:), as the search computed them.
    base = load_space(SPACE, OVERRIDES).config
    assert doc["baselines"] == baselines_for(base.data, base.train.seed)
    assert doc["psnr_floor"] is None  # l2 is no GAN space: no fidelity floor


def test_csv_export(experiment, capsys, tmp_path):
    path = tmp_path / "trials.csv"
    code, out, err = run([experiment["root"], "--csv", path], capsys)
    assert code == 0, err
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    trials = [row for row in rows if row["status"] != "baseline"]
    assert [row["trial"] for row in trials] == [row["trial"] for row in table_rows(out)]
    assert [row["trial"] for row in rows[len(trials):]] == [f"classical:{name}" for name in BASELINE_NAMES]
    by_trial = {row["trial"]: row for row in rows}
    assert by_trial["l2_cccc0003"]["status"] == "diverged"
    assert float(by_trial["l2_aaaa0001"]["val/psnr final"]) == pytest.approx(experiment["reports"]["aaaa0001"][-1]["val/psnr"])
    assert by_trial["l2_ffff0006"]["val/psnr final"] == ""
    assert float(by_trial["l2_bbbb0002"]["optim.generator_lr"]) == 3e-4


# ---------------------------------------------------------------- importances


@pytest.fixture(scope="module")
def importance_experiment(tmp_path_factory):
    """Ten result-only trials whose psnr follows the learning rate; the width never varies; one diverged."""
    root = tmp_path_factory.mktemp("tune") / "l2-importance"
    tune = FakeTune(root, num_samples=10)
    for i in range(9):
        lr = 1e-4 * 30 ** (i / 8)
        trial_params = params(lr, kernel=(3, 5)[i % 2], decay=(0.9, 0.97, 0.93)[i % 3], activation=("tanh", "none")[i % 2])
        tid = f"{i:08x}"
        tune.trial_dir(tid, trial_params)
        tune.result(tid, {"val/psnr": 10 + 2 * math.log10(lr) + 0.01 * (i % 3), "epoch": 2, "diverged": 0}, done=True)
    tune.trial_dir("dead0009", params(3e-3, kernel=5, decay=0.99))
    tune.result("dead0009", {**diverged_metrics(), "epoch": 1, "diverged": 1, "diverged_phase": "generator"}, done=True)
    return root


def test_importances_rank_the_parameter_that_matters_first(importance_experiment, capsys):
    code, out, err = run([importance_experiment, "--json"], capsys)
    assert code == 0, err
    found = json.loads(out)["importances"]
    assert found["trials"] == 10  # the diverged trial counts, with its worst value
    assert list(found["values"])[0] == "optim.generator_lr"
    assert sum(found["values"].values()) == pytest.approx(1.0)
    assert found["constant"] == ["generator.base_width"]
    assert "PedAnova" in found["method"]
    code, out, err = run([importance_experiment], capsys)
    section = out[out.index("Parameter importances for val/psnr"):]
    assert section.splitlines()[1].split()[0] == "optim.generator_lr"  # printed sorted
    assert "1 diverged counted with their worst value" in section
    assert "did not vary: generator.base_width" in section


def test_importances_of_an_experiment_whose_space_file_moved(importance_experiment, tmp_path, capsys):
    copy = tmp_path / "moved"
    shutil.copytree(importance_experiment, copy)
    record = copy / "raysearch_experiment.yaml"
    record.write_text(record.read_text().replace(str(REPO / "search_spaces" / "l2.yaml"), "/elsewhere/l2.yaml"))
    code, out, err = run([copy, "--json"], capsys)
    assert code == 0, err
    found = json.loads(out)["importances"]
    assert list(found["values"])[0] == "optim.generator_lr"
    assert "/elsewhere/l2.yaml is not here: ranges from search space 'l2'" in found["note"]


def test_too_few_trials_for_importances_is_a_note(tmp_path, capsys):
    root = tmp_path / "few"
    tune = FakeTune(root)
    tune.trial_dir("aaaa0001", params(1e-3))
    tune.result("aaaa0001", {"val/psnr": 12.0, "epoch": 2, "diverged": 0}, done=True)
    tune.trial_dir("bbbb0002", params(2e-3))
    tune.result("bbbb0002", {"val/psnr": 11.0, "epoch": 1, "diverged": 0})  # still running
    code, out, err = run([root], capsys)
    assert code == 0, err
    assert "note: 1 trial(s) with a final val/psnr; importances need at least 2" in out


def test_a_parameter_that_never_varied_is_reported_not_evaluated(tmp_path, capsys):
    root = tmp_path / "same"
    tune = FakeTune(root)
    for tid, value in (("aaaa0001", 12.0), ("bbbb0002", 11.0), ("cccc0003", 10.0)):
        tune.trial_dir(tid, params(1e-3))  # every trial has the same params
        tune.result(tid, {"val/psnr": value, "epoch": 2, "diverged": 0}, done=True)
    code, out, err = run([root, "--json"], capsys)
    assert code == 0, err
    found = json.loads(out)["importances"]
    assert found["values"] == {} and "no searched parameter took more than one value" in found["note"]
    assert len(found["constant"]) == 5


# ---------------------------------------------------------------- the grid


def test_grid_png_and_tensorboard(experiment, tmp_path, capsys):
    png = tmp_path / "out" / "grid.png"
    code, out, err = run([experiment["root"], "--grid", png, "--images", 4, "--top", 3], capsys)
    assert code == 0, err
    # Top 3 by rank: the two trained ones; the running trial (no checkpoint yet) between them is left out,
    # the diverged trial is never drawn. Rows: context, ground truth, 2 trials, the 4 classical fills; 4 images.
    assert "#2 l2_dddd0004 left out (no checkpoint yet)" in err
    image = Image.open(png)
    rows, cols = 4 + len(BASELINE_NAMES), 4
    assert image.size == (pictures.LABEL_WIDTH + pictures.PADDING + cols * TILE, pictures.PADDING + rows * TILE)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    grid = pixels[:, pictures.LABEL_WIDTH:]
    tile = lambda r, c: grid[2 + r * TILE: 2 + r * TILE + 64, 2 + c * TILE: 2 + c * TILE + 64]  # noqa: E731
    # The context row has the center blanked (0 in [-1, 1] -> mid gray); the generated rows keep the
    # context's border and fill the center.
    assert np.all(np.abs(tile(0, 0)[16:48, 16:48] - 127) <= 1)
    assert np.array_equal(tile(2, 0)[:16], tile(1, 0)[:16])
    assert not np.all(np.abs(tile(2, 0)[16:48, 16:48] - 127) <= 1)
    # Below the trials, the classical fills of the same images, in BASELINE_NAMES order.
    base = load_space(SPACE, OVERRIDES).config
    subset = validation_subset(base.data)[:cols]
    for index, name in enumerate(BASELINE_NAMES):
        filled = ((filled_images(subset, name).clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for c in range(cols):
            assert np.abs(tile(4 + index, c) - filled[c].astype(int)).max() <= 1, (name, c)
    assert "classical" not in out[out.index("Grid of the top"):]  # the fills are rows, not ranked trials
    # The labels are drawn: the label column is not blank.
    assert (pixels[:, : pictures.LABEL_WIDTH] < 128).any()

    # Each trial row shows its best kept checkpoint, on the same images with the same pipeline as the
    # trial's own TensorBoard preview of that epoch: pixel for pixel.
    psnr = {r["epoch"]: r["val/psnr"] for r in experiment["reports"]["aaaa0001"]}
    best = max(psnr, key=psnr.get)
    shown = out[out.index("Grid of the top"):]
    assert f"l2_aaaa0001: best kept checkpoint epoch {best}" in shown
    row_of_a = 2 + next(i for i, line in enumerate(shown.splitlines()[1:3]) if "l2_aaaa0001" in line)
    events = EventAccumulator(str(experiment["root"] / "tensorboard" / "l2_aaaa0001"), size_guidance={"images": 0})
    events.Reload()
    preview = next(e for e in events.Images("preview/context_truth_generated") if e.step == best)
    preview = np.asarray(Image.open(io.BytesIO(preview.encoded_image_string)).convert("RGB")).astype(int)
    for grid_row, preview_row in ((0, 0), (1, 1), (row_of_a, 2)):
        ours = grid[2 + grid_row * TILE: 2 + grid_row * TILE + 64, 2: 2 + 4 * TILE - 2]
        theirs = preview[2 + preview_row * TILE: 2 + preview_row * TILE + 64, 2: 2 + 4 * TILE - 2]
        assert np.abs(ours - theirs).max() <= 1, grid_row

    # The same grid in TensorBoard, in a run of its own.
    run_dir = experiment["root"] / "tensorboard" / "analysis"
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert analyze.GRID_TAG in events.Tags()["images"]
    logged = events.Images(analyze.GRID_TAG)[-1]
    assert (logged.width, logged.height) == image.size and logged.step == MAX_EPOCHS
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(logged.encoded_image_string)).convert("RGB")),
                          np.asarray(image.convert("RGB")))


def test_best_kept_checkpoint():
    trial = TrialRecord("t", "l2_t", {}, tuple({"epoch": e, "val/swd": v} for e, v in ((1, 5.0), (2, 9.0), (3, 7.0))),
                        "finished", checkpoint_dirs=((2, "l2_t/checkpoint_000001"), (3, "l2_t/checkpoint_000002"),
                                                     (4, "l2_t/checkpoint_000003")))
    # Epoch 1 was best but is no longer kept; epoch 4's metric is unknown (ahead of Tune's log).
    assert trial.best_checkpoints("val/swd", "min") == [3, 2, 4]
    assert trial.best_checkpoints("val/swd", "max") == [2, 3, 4]


def test_grid_without_any_checkpoint_is_an_error(tmp_path, capsys):
    root = tmp_path / "nockpt"
    tune = FakeTune(root)
    tune.trial_dir("aaaa0001", params(1e-3))
    tune.result("aaaa0001", {"val/psnr": 12.0, "epoch": 2, "diverged": 0}, done=True)
    code, out, err = run([root, "--grid", tmp_path / "g.png"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: ") and "--grid: no finished" in err
    assert "l2_aaaa0001" in out  # the table is still printed
    assert not (tmp_path / "g.png").exists()


# ---------------------------------------------------------------- URIs and errors


def test_file_uri(experiment, tmp_path, capsys):
    code, out, err = run([experiment["root"], "--json"], capsys)
    local = json.loads(out)
    png = tmp_path / "uri.png"
    before = set((experiment["root"] / "tensorboard" / "analysis").glob("events.out.tfevents.*"))
    code, out, err = run([f"file://{experiment['root']}", "--json", "--grid", png, "--images", 2], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["trials"] == local["trials"] and doc["importances"] == local["importances"]
    assert doc["baselines"] == local["baselines"]
    assert doc["grid"]["tensorboard"].startswith("file://")
    rows = 4 + len(BASELINE_NAMES)  # context, truth, 2 trials, the classical fills
    assert Image.open(png).size == (pictures.LABEL_WIDTH + pictures.PADDING + 2 * TILE, pictures.PADDING + rows * TILE)
    after = set((experiment["root"] / "tensorboard" / "analysis").glob("events.out.tfevents.*"))
    assert len(after - before) == 1  # uploaded through pyarrow.fs next to any earlier analysis


def test_not_an_experiment(tmp_path, capsys):
    code, out, err = run([tmp_path], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "raysearch_experiment.yaml" in err
    # The storage root above experiments: the error names them.
    FakeTune(tmp_path / "l2-one")
    code, out, err = run([tmp_path], capsys)
    assert code == 2 and "it holds experiments: l2-one" in err
    code, out, err = run([tmp_path / "missing"], capsys)
    assert code == 2 and "no such directory" in err


def test_no_finished_trial(tmp_path, capsys):
    root = tmp_path / "early"
    tune = FakeTune(root)
    tune.trial_dir("aaaa0001", params(1e-3))
    tune.result("aaaa0001", {"val/psnr": 9.0, "epoch": 1, "diverged": 0})
    tune.trial_dir("bbbb0002", params(2e-3))
    code, out, err = run([root], capsys)
    assert code == 2
    assert {r["trial"]: r["status"] for r in table_rows(out)} == {"l2_aaaa0001": "running", "l2_bbbb0002": "pending"}
    assert err.count("\n") == 1 and err.startswith("error: ") and "no finished trial yet (1 running, 1 pending)" in err
    # An experiment without any trial yet.
    code, out, err = run([FakeTune(tmp_path / "empty").root], capsys)
    assert code == 2 and "has no trials yet" in err


def test_command_line_exit_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "raysearch.analyze", str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


# ---------------------------------------------------------------- end to end


# analyze on a real search's experiment: test_tune's test_a_stopped_search_resumes_with_its_printed_command_...


# ---------------------------------------------------------------- rank stability


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    from raysearch.stability import spearman

    first, second = [3.0, 1.0, 2.0, 5.0, 5.0, 0.5], [2.5, 1.5, 1.0, 4.0, 6.0, 0.1]
    assert spearman(first, second) == pytest.approx(spearmanr(first, second).statistic)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_half_scores_are_the_loops_metrics_on_each_half(experiment):
    from raysearch.stability import experiment_rank_stability, half_scores

    trial = open_experiment(str(experiment["root"])).trial("l2_aaaa0001")
    state = load_checkpoint(experiment["root"] / trial.checkpoint_dir(2))
    scores = half_scores(state)
    assert scores.images == 16  # data.val_images=32
    # The first half is what the loop measures on a 16-image subset (l2: no noise; eval-mode batch norm).
    loop, _ = validated_by_the_loop(state, val_images=16)
    assert scores.first == pytest.approx(loop)
    assert scores.first != pytest.approx(scores.second)

    found = experiment_rank_stability(str(experiment["root"]))
    # Trained, not diverged, with a checkpoint: the finished and the stopped trial.
    assert found["metric"] == "val/psnr" and set(found["trials"]) == {"l2_aaaa0001", "l2_bbbb0002"}
    assert found["trials"]["l2_aaaa0001"]["first"] == pytest.approx(scores.first["val/psnr"])
    assert found["rho"] in (pytest.approx(1.0), pytest.approx(-1.0))
    assert found["rhos"]["val/psnr"] == found["rho"] and set(found["rhos"]) == {"val/psnr"}
    by_swd = experiment_rank_stability(str(experiment["root"]), "val/swd")
    assert set(by_swd["rhos"]) == {"val/swd", "val/psnr"} and by_swd["rho"] == by_swd["rhos"]["val/swd"]
    assert by_swd["trials"]["l2_aaaa0001"]["first"] == pytest.approx(scores.first["val/swd"])


@pytest.mark.slow
def test_rank_stability_flag_prints_rho_per_metric(experiment, capsys):
    from raysearch.stability import experiment_rank_stability

    expected = experiment_rank_stability(str(experiment["root"]))
    code, out, err = run([experiment["root"], "--rank-stability"], capsys)
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("Rank stability over")]
    assert "over 2 trials" in line and "16 validation images each" in line
    assert f"val/psnr rho {expected['rho']:.3f}" in line
    code, out, err = run([experiment["root"], "--json", "--rank-stability"], capsys)
    assert code == 0, err
    found = json.loads(out)["rank_stability"]
    assert found == {"images_per_half": 16, "trials": 2, "rho": {"val/psnr": pytest.approx(expected["rho"])}}


@pytest.mark.slow
def test_judge_rows_are_the_top_trials_beside_the_real_centers_and_the_fills(experiment, capsys):
    code, out, err = run([experiment["root"], "--judge", "--top", "1", "--judge-seeds", "2", "--json"], capsys)
    assert code == 0, err
    judged = json.loads(out)["judge"]
    assert list(judged) == ["real", *BASELINE_NAMES, "#1 l2_aaaa0001"]  # the finished trial ranks first
    for row in judged.values():
        assert len(row["auc"]["values"]) == 2 and 0 <= row["auc"]["mean"] <= 1  # --judge-seeds (the least), not 10
    assert judged["mean"]["auc"]["mean"] > judged["real"]["auc"]["mean"]  # the flat fill is told apart
