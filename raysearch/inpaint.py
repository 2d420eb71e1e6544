"""`python -m raysearch.inpaint MODEL PHOTO_OR_DIR... --out DIR`: fill the hole of your own photos with a model.

`python -m raysearch.inpaint MODEL --export DIR` writes MODEL's generator alone (config, epoch and the
weights validation measured; no critic, optimisers or RNG) as a checkpoint DIR that is a MODEL in turn:
what to hand to others (the repository's own `trained/` models are made this way).

MODEL is any of:
- a checkpoint directory (holding state.pt);
- a run directory of `python -m raysearch.train` (its latest checkpoint);
- a trial's directory in a search (its latest kept checkpoint);
- an experiment directory of `python -m raysearch.tune` (its best trial, ranked as the search's table
  ranks it; for a search over several objectives the front's knee, or the trial `--pick` names: a trial's
  name, or `best:METRIC` for the front trial best on that objective; at its best kept checkpoint).

Each photo is center-cropped and resized to 64x64 as `prepare` does (a 64x64
image is taken as it is), its 32x32 center filled by the generator (its weight
average where the run kept one) exactly as validation fills it (raysearch.fill),
and written to `--out` as `<name>.png`: every pixel outside the hole is the
64x64 photo's own, bit for bit (a context margin's overlap is not pasted).
`--compare` also writes `<name>_compare.png`: the photo with its hole, the
fill, the original, and the classical fill that is best on that photo, each
with its PSNR. Runs on the CPU or a GPU (`--device`), in batches, with a
progress line for many photos. Bad input is one line: a file that is not an
image, a checkpoint that is refused or does not fit, an `--out` holding files
this command did not write.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.geometry import IMAGE_SIZE, hole_of, mask_context
from raysearch import cli, metrics
from raysearch.baselines import BASELINE_NAMES, filled_images
from raysearch.checkpoint import (
    RUN_DIR_CHECKPOINTS,
    STATE_FILE,
    generator_only,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from raysearch.config import ExperimentConfig
from raysearch.constants import EXPERIMENT_FILE
from raysearch.data.dataset import as_unit, to_float_images, to_uint8_images
from raysearch.data.images import load_square
from raysearch.data.photos import is_photo
from raysearch.errors import CheckpointError, ConfigError, DataError, RaysearchError
from raysearch.experiment import open_experiment
from raysearch.fill import composite, generator_outputs, trained_generator, validation_noise
from raysearch.pictures import strip

MANIFEST = "inpaint.json"  # what this command wrote into --out (so a later run may write there again)


@dataclass(frozen=True)
class Model:
    checkpoint: Path
    what: str  # how MODEL was read, for the console


def find_model(path: str, log=print, pick: str | None = None) -> Model:
    """The checkpoint MODEL names (see the module's docstring; `pick` chooses an experiment's trial), or
    CheckpointError saying what was found."""
    where = Path(path).expanduser()
    if (where / STATE_FILE).is_file():
        return Model(where, "checkpoint")
    if not where.is_dir():
        raise CheckpointError(f"{path}: no such directory; allowed: a checkpoint, a run directory of "
                              "raysearch.train, a trial's or an experiment's directory of raysearch.tune")
    run = latest_checkpoint(where / RUN_DIR_CHECKPOINTS)
    if run is not None:
        return Model(run, f"run {where}, its latest checkpoint")
    if (where / EXPERIMENT_FILE).is_file():
        experiment = open_experiment(str(where))
        best = experiment.best_model(log, pick)
        if best is None:
            raise CheckpointError(f"{path}: no trial of this experiment has a checkpoint yet")
        trial, epoch = best
        chosen = f"--pick {pick}" if pick else ("the front's knee" if len(experiment.objectives) > 1 else "best trial")
        return Model(where / trial.checkpoint_dir(epoch), f"experiment {where}: {chosen}: {trial.name}, epoch {epoch}")
    if (where.parent / EXPERIMENT_FILE).is_file():
        trial = next((t for t in open_experiment(str(where.parent)).trials if t.name == where.name), None)
        if trial is not None and trial.checkpoints:
            epoch = trial.checkpoints[-1]
            return Model(where.parent / trial.checkpoint_dir(epoch), f"trial {trial.name}, epoch {epoch}")
        raise CheckpointError(f"{path}: this trial has no kept checkpoint")
    raise CheckpointError(f"{path}: holds no {STATE_FILE}, no run's train/epoch_* and no experiment; allowed: a "
                          "checkpoint, a run directory of raysearch.train, a trial's or an experiment's directory")


def export(state: dict, directory: Path) -> None:
    """Write the generator alone (checkpoint.generator_only) to `directory`, refused where it holds anything."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"--export {directory}: exists and is not an empty directory; allowed: a new or empty one")
    save_checkpoint(generator_only(state), directory)


def photo_paths(inputs: list[str]) -> list[Path]:
    """The photos named, directories searched recursively, in a stable order; DataError for a missing one."""
    photos: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_photo(p))
            if not found:
                raise DataError(f"{item}: holds no photo (jpg, jpeg, png, bmp, webp)")
            photos += found
        elif path.is_file():
            photos.append(path)
        else:
            raise DataError(f"{item}: no such file or directory")
    return photos


def load_photo(path: Path) -> np.ndarray:
    """uint8 [64, 64, 3]: the centered square, resized as `prepare` does; DataError naming a file that is no image."""
    try:
        square, _ = load_square(path, IMAGE_SIZE)
    except (OSError, ValueError) as err:  # Pillow's UnidentifiedImageError is an OSError
        raise DataError(f"{path}: not an image Pillow can read ({type(err).__name__})") from None
    return square


def check_out(out: Path, names: list[str]) -> None:
    """--out is new, empty, or holds only what this command wrote there; two photos must not share an output."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; allowed: a directory (created if missing)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"two photos would both be written as {duplicates[0]}.png in --out: give them other names "
                          "or fill them in two runs")
    if not out.is_dir():
        return
    ours = set(json.loads((out / MANIFEST).read_text())["written"]) if (out / MANIFEST).is_file() else set()
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours and p.name != MANIFEST)
    if foreign:
        raise ConfigError(f"--out {out}: holds files raysearch.inpaint did not write (e.g. {foreign[0]}); allowed: "
                          "a new or empty directory, or one this command wrote")


def fill_photos(generator: torch.nn.Module, cfg: ExperimentConfig, photos: np.ndarray, device: torch.device,
                batch_size: int, log=print) -> torch.Tensor:
    """Float [N, 3, 64, 64] in [-1, 1]: the photos (uint8 [N, 64, 64, 3]) with their holes filled as validation
    fills them (raysearch.fill); every pixel outside the hole is the photo's own."""
    images = to_float_images(torch.from_numpy(photos))
    noise = validation_noise(cfg, len(images), torch.device("cpu"))  # the same noise for the same photo order
    tokens = torch.zeros(len(images), 5, cfg.data.caption_length, dtype=torch.long)  # photos have no captions
    outputs = generator_outputs(generator, cfg, images, tokens, noise, device=device, batch_size=batch_size,
                                progress=lambda done, total: log(f"filled {done}/{total} photos"))
    return composite(images, outputs)


def psnr(filled: torch.Tensor, original: torch.Tensor) -> float:
    """PSNR (dB) of one filled hole ([3, 64, 64] in [-1, 1]) against the original's, as validation measures it."""
    return float(metrics.psnr(as_unit(hole_of(filled[None])), as_unit(hole_of(original[None]))))


def write_png(image: torch.Tensor, path: Path) -> None:
    """One [3, 64, 64] image in [-1, 1] as a PNG: pixels that came from a photo come back bit for bit."""
    Image.fromarray(to_uint8_images(image[None])[0].numpy()).save(path)


def compare_strip(photo: np.ndarray, filled: torch.Tensor, fills: dict[str, torch.Tensor]):
    """The photo with its hole, the model's fill, the original, and the classical fill (of `fills`, each
    [3, 64, 64]) best on this photo."""
    original = to_float_images(torch.from_numpy(photo[None]))[0]
    scores = {name: psnr(image, original) for name, image in fills.items()}
    best = max(scores, key=scores.get)
    return strip([mask_context(original[None])[0], filled, original, fills[best]],
                 [("input", "with its hole"), ("raysearch", f"{psnr(filled, original):.2f} dB"),
                  ("original", ""), (f"best fill: {best}", f"{scores[best]:.2f} dB")])


def parse_args(argv: list[str] | None):
    parser = cli.ArgumentParser(prog="python -m raysearch.inpaint",
                                description="Fill the 32x32 center of your own photos (center-cropped to 64x64) "
                                            "with a trained model; see the module's docstring for MODEL.")
    parser.add_argument("model", help="a checkpoint, a raysearch.train run, a trial's or an experiment's directory")
    parser.add_argument("photos", nargs="*", metavar="PHOTO_OR_DIR", help="photos, or folders searched recursively")
    parser.add_argument("--out", help="where the filled photos go (a new or empty directory, or one this command wrote)")
    parser.add_argument("--export", metavar="DIR", help="write MODEL's generator alone as a checkpoint to DIR (new or "
                                                        "empty): a MODEL for this command, a quarter the size")
    parser.add_argument("--compare", action="store_true",
                        help="also write <name>_compare.png: input, fill, original, best classical fill")
    parser.add_argument("--pick", metavar="TRIAL_OR_RULE",
                        help="with an experiment as MODEL: which trial fills (knee: the front's knee, the default of "
                        "a search over several objectives; best:METRIC: the front trial best on that objective; or a "
                        "trial's name)")
    parser.add_argument("--alpha", type=cli.realism_alpha, help=cli.ALPHA_HELP)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if not args.photos and not args.export:
        parser.error("give photos to fill (with --out), or --export DIR")
    if args.photos and not args.out:
        parser.error("--out is required with photos: where the filled photos go")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    out = Path(args.out).expanduser() if args.out else None
    try:
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                              "cpu" if args.device == "auto" else args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: torch sees no GPU here; allowed: auto or cpu")
        model = find_model(args.model, log, args.pick)
        where = str(model.checkpoint / STATE_FILE)
        state = load_checkpoint(model.checkpoint)
        cfg, generator = trained_generator(state, where, device, args.alpha)
        if args.export:
            export(state, Path(args.export).expanduser())
            log(f"model: {model.what}; its generator written to {args.export}")
            if not args.photos:
                return 0
        if cfg.captions.enabled:
            raise CheckpointError(f"{where}: conditions on captions (captions.encoder={cfg.captions.encoder}); photos "
                                  "have none: use a model trained without captions")
        paths = photo_paths(args.photos)
        check_out(out, [p.stem for p in paths])
        photos = np.stack([load_photo(p) for p in paths])
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log(f"model: {model.what} ({model.checkpoint}); {len(paths)} photo(s) on {device}")
    filled = fill_photos(generator, cfg, photos, device, args.batch_size, log)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    written = set(json.loads(manifest.read_text())["written"]) if manifest.is_file() else set()
    # The classical fills of all photos at once (one batched harmonic solve, not one per photo).
    classical = {name: filled_images(photos, name) for name in BASELINE_NAMES} if args.compare else {}
    for index, (path, photo, image) in enumerate(zip(paths, photos, filled)):
        write_png(image, out / f"{path.stem}.png")
        written.add(f"{path.stem}.png")
        if args.compare:
            fills = {name: images[index] for name, images in classical.items()}
            compare_strip(photo, image, fills).save(out / f"{path.stem}_compare.png")
            written.add(f"{path.stem}_compare.png")
    manifest.write_text(json.dumps({"model": str(model.checkpoint), "written": sorted(written)}, indent=1))
    log(f"wrote {len(paths)} filled photo(s){' and comparisons' if args.compare else ''} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
