"""`python -m raysearch.inpaint`: a trained model fills the holes of real photos (../shared/photos; skipped in a
lone clone), found from a checkpoint, a run, a trial or an experiment, and changes no pixel outside the hole;
bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import ConditionedGenerator
from models.geometry import HOLE_SIZE, HOLE_START, IMAGE_SIZE
from raysearch import inpaint, runtime
from raysearch.checkpoint import RUN_DIR_CHECKPOINTS, STATE_FILE, latest_checkpoint, load_checkpoint, save_checkpoint
from raysearch.config import config_to_dict, list_spaces, load_config
from raysearch.errors import CheckpointError
from raysearch.loop import Worker, Trial
from tests.conftest import SMALL_DATA
from tests.fake_tune import FakeTune, params
from tests.photos import bsds_photos

RUN = SMALL_DATA + ["generator.base_width=8", "generator.max_width=32", "train.epochs=1", "train.steps_per_epoch=2",
                    "train.preview_images=0", "train.ema_decay=0.9", "generator.input_fill=harmonic"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real `raysearch.train` run directory (one tiny epoch, a weight average kept)."""
    directory = tmp_path_factory.mktemp("run")
    runtime.train_run(load_config("l2", RUN), directory)
    return directory


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three real photos of other sizes, and one already 64x64."""
    folder = tmp_path_factory.mktemp("photos")
    chosen = bsds_photos(count=3)
    for path in chosen:
        shutil.copy(path, folder / path.name)
    Image.open(chosen[0]).convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)).save(folder / "tiny.png")
    return folder


def fill(capsys, *argv) -> tuple[int, str]:
    code = inpaint.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_photos_are_filled_inside_the_hole_only_and_written_as_png(run_dir, photos, tmp_path, capsys):
    code, err = fill(capsys, run_dir, photos, "--out", tmp_path / "out", "--compare", "--batch-size", "2")
    assert code == 0, err
    names = sorted(p.stem for p in photos.iterdir())
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.png") if not p.stem.endswith("_compare")) == names
    for name in names:
        written = pixels(tmp_path / "out" / f"{name}.png")
        square = inpaint.load_photo(photos / (name + (".png" if name == "tiny" else ".jpg"))).astype(np.int16)
        assert written.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        hole = (slice(HOLE_START, HOLE_START + HOLE_SIZE),) * 2
        outside = np.ones((IMAGE_SIZE, IMAGE_SIZE), bool)
        outside[hole] = False
        assert np.array_equal(written[outside], square[outside])  # the context is the photo's own, bit for bit
        assert np.abs(written[hole] - square[hole]).mean() > 1  # the hole is the model's
        strip = Image.open(tmp_path / "out" / f"{name}_compare.png")
        assert strip.width > 4 * IMAGE_SIZE and strip.height > IMAGE_SIZE
    # A 64x64 photo is taken as it is, as prepare takes it.
    tiny = np.asarray(Image.open(photos / "tiny.png").convert("RGB"), dtype=np.int16)
    assert np.array_equal(inpaint.load_photo(photos / "tiny.png"), tiny)
    assert "filled 4/4 photos" in err  # progress, batch by batch


def generator_checkpoint(space: str, margin: int, directory: Path) -> Path:
    """A generator-only checkpoint of `space`'s base generator (seeded initial weights) with context margin
    `margin`: what `inpaint --export` writes. The captions space's generator without its captions (photos have
    none; inpaint refuses a model that needs them)."""
    overrides = [f"generator.context_margin={margin}", "train.ema_decay=0"]
    if space == "captions":
        overrides.append("captions.encoder=none")
    cfg = load_config(space, overrides)
    torch.manual_seed(0)
    generator = ConditionedGenerator(cfg.generator, cfg.captions, vocab_size=0)
    state = {"config": config_to_dict(cfg), "epoch": 0, "generator": generator.state_dict(), "generator_average": None}
    return save_checkpoint(state, directory)


@pytest.mark.parametrize("margin", [0, 2])
@pytest.mark.parametrize("space", list_spaces())
def test_no_pixel_outside_the_hole_changes_bit_for_bit(space, margin, photos, tmp_path, capsys):
    # A context margin m makes the generator output a (32 + 2m)-pixel square: only its central 32x32 is pasted.
    model = generator_checkpoint(space, margin, tmp_path / "model")
    code, err = fill(capsys, model, photos, "--out", tmp_path / "out")
    assert code == 0, err
    hole = (slice(HOLE_START, HOLE_START + HOLE_SIZE),) * 2
    outside = np.ones((IMAGE_SIZE, IMAGE_SIZE), bool)
    outside[hole] = False
    for path in sorted(photos.iterdir()):
        written = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png").convert("RGB"))
        photo = inpaint.load_photo(path)
        assert np.array_equal(written[outside], photo[outside]), path.name
        assert not np.array_equal(written[hole], photo[hole]), path.name  # the hole is the generator's


def test_the_fill_is_the_weight_average_s(run_dir, photos, tmp_path, capsys):
    checkpoint = latest_checkpoint(run_dir / RUN_DIR_CHECKPOINTS)
    state = load_checkpoint(checkpoint)
    for tensor in state["generator"].values():  # ruin the trained weights: the average must not notice
        if tensor.is_floating_point():
            tensor.add_(torch.randn_like(tensor))
    save_checkpoint(state, tmp_path / "ruined")
    assert fill(capsys, checkpoint, photos, "--out", tmp_path / "a")[0] == 0
    assert fill(capsys, tmp_path / "ruined", photos, "--out", tmp_path / "b")[0] == 0
    for png in (tmp_path / "a").glob("*.png"):
        assert np.array_equal(pixels(png), pixels(tmp_path / "b" / png.name))


def test_an_exported_generator_fills_exactly_as_its_checkpoint_and_cannot_resume(run_dir, photos, tmp_path, capsys):
    checkpoint = latest_checkpoint(run_dir / RUN_DIR_CHECKPOINTS)
    code, err = fill(capsys, run_dir, "--export", tmp_path / "model")
    assert code == 0, err
    exported = load_checkpoint(tmp_path / "model")
    assert sorted(exported) == ["config", "epoch", "format_version", "generator", "generator_average"]
    # The average alone is kept, once: the file is far smaller than the full state.
    full_size = (checkpoint / STATE_FILE).stat().st_size
    assert (tmp_path / "model" / STATE_FILE).stat().st_size < 0.6 * full_size
    assert fill(capsys, checkpoint, photos, "--out", tmp_path / "a")[0] == 0
    assert fill(capsys, tmp_path / "model", photos, "--out", tmp_path / "b")[0] == 0
    for png in (tmp_path / "a").glob("*.png"):
        assert np.array_equal(pixels(png), pixels(tmp_path / "b" / png.name))
    # Exporting again over it is refused; so is resuming a run from it (no optimisers, no RNG).
    code, err = fill(capsys, run_dir, "--export", tmp_path / "model")
    assert code == 2 and "--export" in err and "not an empty directory" in err
    with pytest.raises(CheckpointError, match="'step'"):
        Trial(load_config("l2", RUN), Worker(device=torch.device("cpu"))).restore(exported, tmp_path / "model")


def test_a_trial_and_an_experiment_directory_name_their_checkpoints(tmp_path, photos, capsys):
    experiment = tmp_path / "l2-test"
    tune = FakeTune(experiment, num_samples=2)
    tune.train("aaaa0001", params(1e-3), epochs=2)
    tune.train("bbbb0002", params(3e-3, kernel=5), epochs=2)
    model = inpaint.find_model(str(experiment / "l2_bbbb0002"))
    assert model.checkpoint == experiment / "l2_bbbb0002" / "checkpoint_000001"  # its latest: epoch 2
    best = inpaint.find_model(str(experiment), log=lambda line: None)
    ranked = tune.space  # the same ranking the search's table uses: val/psnr, max
    finals = {t: json.loads((experiment / f"l2_{t}" / "result.json").read_text().splitlines()[-1])["val/psnr"]
              for t in ("aaaa0001", "bbbb0002")}
    assert ranked.metric == "val/psnr" and best.checkpoint.parent.name == f"l2_{max(finals, key=finals.get)}"
    code, err = fill(capsys, experiment, photos, "--out", tmp_path / "out")
    assert code == 0 and "best trial" in err


def test_bad_input_is_one_line_and_writes_nothing(run_dir, photos, tmp_path, capsys):
    def refused(*argv, words):
        code, err = fill(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
        for word in words:
            assert word in lines[0], lines[0]

    (tmp_path / "notes.jpg").write_text("not an image")
    refused(run_dir, tmp_path / "notes.jpg", "--out", tmp_path / "o1", words=["notes.jpg", "not an image"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / STATE_FILE).write_bytes(b"garbage")
    refused(tmp_path / "broken", photos, "--out", tmp_path / "o2", words=[STATE_FILE])
    # A checkpoint whose weights do not fit its own config (another kernel size).
    state = load_checkpoint(latest_checkpoint(run_dir / RUN_DIR_CHECKPOINTS))
    state["config"]["generator"]["kernel_size"] = 5
    save_checkpoint(state, tmp_path / "mismatched")
    refused(tmp_path / "mismatched", photos, "--out", tmp_path / "o3", words=["mismatched", "does not fit"])
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "thesis.tex").write_text("mine")
    refused(run_dir, photos, "--out", tmp_path / "theirs", words=["thesis.tex", "did not write"])
    assert (tmp_path / "theirs" / "thesis.tex").read_text() == "mine"
    refused(tmp_path / "nowhere", photos, "--out", tmp_path / "o4", words=["nowhere"])
    refused(run_dir, photos, "--out", tmp_path / "o5", "--alpha", "0.5", words=["--alpha", "realism residual"])
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4", "o5"))
    # A directory this command wrote can be written again.
    assert fill(capsys, run_dir, photos, "--out", tmp_path / "again")[0] == 0
    assert fill(capsys, run_dir, photos, "--out", tmp_path / "again", "--compare")[0] == 0
