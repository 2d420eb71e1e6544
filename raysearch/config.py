"""The typed experiment config: dataclasses, YAML loading, overrides, validation.

A config is built once, before Ray starts, from a YAML file's `base:` section
plus dotted `--set key=value` overrides. Unknown keys, wrong types, values out
of range and invalid combinations raise `ConfigError` with one line naming the
file, the dotted key and what is allowed. Trial code reads fields; it never
looks a key up with a default, so a misspelt hyperparameter cannot be silently
ignored (the failure of Ray's own `pbt_dcgan_mnist` example).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from models import CAPTION_ENCODERS, CRITICS, GENERATORS
from models.critics import patch_field
from models.options import CaptionOptions, CriticOptions, GeneratorOptions
from raysearch.errors import ConfigError
from raysearch.losses import CLASSIFYING_OBJECTIVES

Objective = Literal["l2", "gan", "nsgan", "wgan", "wgan-gp", "hinge"]
Reconstruction = Literal["mse", "image_psnr"]
ADVERSARIAL_OBJECTIVES = ("gan", "nsgan", "wgan", "wgan-gp", "hinge")
BCE_OBJECTIVES = ("gan", "nsgan")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how much of them a trial uses.

    path: a prepared dataset directory or storage URI; null uses the synthetic
        dataset, generated once into the cache (synthetic_* say its size).
    train_images / val_images: use only the first N of each split (0 = all);
        val_images is the fixed validation subset every epoch is measured on.
    augment: random symmetries of each training image, drawn per image and step:
        `flip` mirrors left-right, `dihedral` also up-down and across the diagonal
        (the 8 symmetries of the square; the centered hole is invariant under all).
        A few hundred photos are memorised within a few epochs without it.
    """

    path: str | None = None
    synthetic_train: int = 2000
    synthetic_val: int = 200
    synthetic_seed: int = 0
    train_images: int = 0
    val_images: int = 200
    vocab_min_count: int = 10
    caption_length: int = 16
    augment: Literal["none", "flip", "dihedral"] = "none"

    def __post_init__(self) -> None:
        _require(self.synthetic_train >= 1, f"synthetic_train: must be >= 1, got {self.synthetic_train}")
        _require(self.synthetic_val >= 1, f"synthetic_val: must be >= 1, got {self.synthetic_val}")
        _require(self.train_images >= 0, f"train_images: must be >= 0 (0 = all), got {self.train_images}")
        _require(self.val_images >= 0, f"val_images: must be >= 0 (0 = all), got {self.val_images}")
        _require(self.vocab_min_count >= 1, f"vocab_min_count: must be >= 1, got {self.vocab_min_count}")
        _require(2 <= self.caption_length <= 64, f"caption_length: must be 2 to 64, got {self.caption_length}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Generator loss = l2_weight * reconstruction + adv_weight * adversarial.

    That one form covers seed 000's a*Lrec + (1-a)*Ladv and seed 001's L2
    rescaled by alpha = 1e-5. Reconstruction is the mean squared error over
    the generated square (32x32, or 36x36 with a context margin of 2).

    clip: WGAN weight-clipping range [-clip, clip] (seed 000 used 0.05).
    gp_weight: WGAN-GP gradient-penalty weight.
    label_smoothing: real label 1 - s for the BCE objectives (one-sided).
    instance_noise: std of Gaussian noise added to the critic's real inputs
        (seed 000), or to both real and fake with instance_noise_on: both.
    clip_penalty_weight: weight of MSE(before clip, after clip) when the
        generator's output activation is `clip` (seed 000).
    border_weight: extra reconstruction weight of the pixels within `border_width`
        of the hole's edge (and of the whole context margin): each counts
        1 + border_weight times, the weights rescaled to average 1 (0 = plain MSE).
    reconstruction: `mse` (the seeds' L2 of the batch) or `image_psnr` (each
        image weighted by the inverse of its own error: the gradient of the mean
        per-image PSNR that validation reports; losses.reconstruction).
    r1_weight: weight of R1, the zero-centred gradient penalty on real images
        (Mescheder et al. 2018; their gamma / 2: gamma 10 is 5), added to the critic's
        loss (losses.r1_penalty); 0 = none. For gan, nsgan and hinge (wgan-gp has gp_weight).
    r1_every: lazy R1 (StyleGAN2): computed on one critic step in r1_every, weighted
        r1_every * r1_weight there (losses.lazy_weight).
    feature_matching_weight: weight of the L1 between the critic's features of real
        and generated images in the generator's loss (pix2pixHD, LaMa;
        losses.feature_matching); 0 = none.
    mask_aware_labels: with the `patch` critic, a generated image's cells are fake only
        where they see the hole, real elsewhere (LaMa; losses.mask_aware_critic_loss);
        false labels every cell of a generated image fake.
    """

    name: Objective = "l2"
    l2_weight: float = 1.0
    adv_weight: float = 0.0
    clip: float = 0.01
    gp_weight: float = 10.0
    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    instance_noise_on: Literal["real", "both"] = "real"
    clip_penalty_weight: float = 1.0
    border_weight: float = 0.0
    border_width: int = 4
    reconstruction: Reconstruction = "mse"
    r1_weight: float = 0.0
    r1_every: int = 1
    feature_matching_weight: float = 0.0
    mask_aware_labels: bool = False

    def __post_init__(self) -> None:
        _require(self.l2_weight >= 0, f"l2_weight: must be >= 0, got {self.l2_weight}")
        _require(self.adv_weight >= 0, f"adv_weight: must be >= 0, got {self.adv_weight}")
        _require(0 < self.clip <= 10, f"clip: must be in (0, 10], got {self.clip}")
        _require(self.gp_weight >= 0, f"gp_weight: must be >= 0, got {self.gp_weight}")
        _require(0 <= self.label_smoothing < 0.5, f"label_smoothing: must be in [0, 0.5), got {self.label_smoothing}")
        _require(self.instance_noise >= 0, f"instance_noise: must be >= 0, got {self.instance_noise}")
        _require(self.clip_penalty_weight >= 0, f"clip_penalty_weight: must be >= 0, got {self.clip_penalty_weight}")
        _require(self.border_weight >= 0, f"border_weight: must be >= 0, got {self.border_weight}")
        _require(1 <= self.border_width <= 15, f"border_width: must be 1 to 15, got {self.border_width}")
        _require(self.r1_weight >= 0, f"r1_weight: must be >= 0 (0 = none), got {self.r1_weight}")
        _require(1 <= self.r1_every <= 64, f"r1_every: must be 1 to 64 (critic steps), got {self.r1_every}")
        _require(
            self.feature_matching_weight >= 0,
            f"feature_matching_weight: must be >= 0 (0 = none), got {self.feature_matching_weight}",
        )

    @property
    def adversarial(self) -> bool:
        return self.name in ADVERSARIAL_OBJECTIVES


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers of the generator and the critic (separate learning rates).

    lr_decay: multiply both learning rates by this after every epoch (seed 000: 0.99).
    betas: Adam's; RMSprop uses `alpha` = betas[1].
    """

    name: Literal["adam", "rmsprop"] = "adam"
    generator_lr: float = 2e-4
    critic_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    lr_decay: float = 1.0

    def __post_init__(self) -> None:
        _require(0 < self.generator_lr <= 1, f"generator_lr: must be in (0, 1], got {self.generator_lr}")
        _require(0 < self.critic_lr <= 10, f"critic_lr: must be in (0, 10], got {self.critic_lr}")
        _require(all(0 <= b < 1 for b in self.betas), f"betas: each must be in [0, 1), got {list(self.betas)}")
        _require(self.weight_decay >= 0, f"weight_decay: must be >= 0, got {self.weight_decay}")
        _require(0 < self.lr_decay <= 1, f"lr_decay: must be in (0, 1], got {self.lr_decay}")


@dataclass(frozen=True)
class TrainConfig:
    """The loop: epochs, batch, step ratios, checkpoints, devices.

    critic_steps: critic updates per generator update (WGAN's n_critic).
    generator_steps: generator updates per critic update (seed 000 tried up to 10).
    pretrain_epochs: epochs of reconstruction-only training before the critic
        and the adversarial term start (seed 000's and 001's L2 pretraining).
    steps_per_epoch: cap on steps per epoch, a step being critic_steps critic batches then
        generator_steps generator batches (0 = one pass over the data).
    checkpoint_every: write a full-state checkpoint every N epochs (and at the end).
    workers: Ray Train workers (DDP when > 1).
    device: `auto` uses the GPU when there is one.
    ema_decay: validate (and checkpoint) an exponential moving average of the
        generator's weights with this decay per generator step (0 = validate the
        trained weights, as the seeds did). Early steps average over fewer
        updates, min(ema_decay, (1 + n) / (10 + n)) after n updates, so a short
        run is not dominated by the initial weights.
    """

    epochs: int = 10
    batch_size: int = 64
    critic_steps: int = 1
    generator_steps: int = 1
    pretrain_epochs: int = 0
    steps_per_epoch: int = 0
    seed: int = 0
    checkpoint_every: int = 1
    workers: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    preview_images: int = 8
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"epochs: must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 2, f"batch_size: must be >= 2 (batch norm needs 2), got {self.batch_size}")
        _require(1 <= self.critic_steps <= 20, f"critic_steps: must be 1 to 20, got {self.critic_steps}")
        _require(1 <= self.generator_steps <= 20, f"generator_steps: must be 1 to 20, got {self.generator_steps}")
        _require(self.pretrain_epochs >= 0, f"pretrain_epochs: must be >= 0, got {self.pretrain_epochs}")
        _require(self.steps_per_epoch >= 0, f"steps_per_epoch: must be >= 0 (0 = full pass), got {self.steps_per_epoch}")
        _require(self.checkpoint_every >= 1, f"checkpoint_every: must be >= 1, got {self.checkpoint_every}")
        _require(1 <= self.workers <= 64, f"workers: must be 1 to 64, got {self.workers}")
        _require(0 <= self.preview_images <= 64, f"preview_images: must be 0 to 64, got {self.preview_images}")
        _require(0 <= self.ema_decay < 1, f"ema_decay: must be in [0, 1) (0 = no average), got {self.ema_decay}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one trial needs; the YAML `base:` section maps onto it."""

    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorOptions = field(default_factory=GeneratorOptions)
    critic: CriticOptions = field(default_factory=CriticOptions)
    captions: CaptionOptions = field(default_factory=CaptionOptions)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---------------------------------------------------------------- combinations


def check_combinations(cfg: ExperimentConfig) -> None:
    """Reject combinations of options that cannot train as intended."""
    gen, critic, obj, train = cfg.generator, cfg.critic, cfg.objective, cfg.train
    _check_name("generator.name", gen.name, GENERATORS.names())
    _check_name("critic.name", critic.name, CRITICS.names())
    _check_name("captions.encoder", cfg.captions.encoder, ["none", *CAPTION_ENCODERS.names()])
    if obj.name == "l2" and obj.adv_weight != 0:
        raise ConfigError(
            f"objective.adv_weight={obj.adv_weight} has no effect with objective.name=l2; "
            f"set it to 0 or choose one of {', '.join(ADVERSARIAL_OBJECTIVES)}"
        )
    if obj.adversarial and obj.adv_weight == 0:
        raise ConfigError(
            f"objective.name={obj.name} needs objective.adv_weight > 0 "
            "(use objective.name=l2 to train without a critic)"
        )
    if obj.name == "wgan-gp" and critic.norm == "batch":
        raise ConfigError(
            "critic.norm=batch cannot be used with objective.name=wgan-gp: the gradient penalty is "
            "per sample and batch norm mixes samples; use layer, none or spectral"
        )
    if gen.output_activation == "clip" and obj.name != "wgan":
        raise ConfigError(
            f"generator.output_activation=clip is seed 000's WGAN trick and needs objective.name=wgan, "
            f"got {obj.name}; use none, tanh or sigmoid"
        )
    if obj.label_smoothing and obj.name not in BCE_OBJECTIVES:
        raise ConfigError(
            f"objective.label_smoothing applies to the BCE objectives ({', '.join(BCE_OBJECTIVES)}), "
            f"not {obj.name}; set it to 0"
        )
    if train.compile and obj.name == "wgan-gp":
        raise ConfigError(
            "train.compile=true cannot be used with objective.name=wgan-gp: torch.compile does not support "
            "the gradient penalty's double backward; set train.compile=false"
        )
    if train.critic_steps > 1 and train.generator_steps > 1:
        raise ConfigError(
            f"train.critic_steps={train.critic_steps} and train.generator_steps={train.generator_steps}: "
            "one of the two step ratios must be 1"
        )
    if cfg.data.val_images and train.preview_images > cfg.data.val_images:
        raise ConfigError(
            f"train.preview_images={train.preview_images} exceeds data.val_images={cfg.data.val_images}"
        )
    _check_recipes(cfg)


def _check_recipes(cfg: ExperimentConfig) -> None:
    """The adversarial recipes of current inpainting models (docs/quality.md): what each needs."""
    gen, critic, obj = cfg.generator, cfg.critic, cfg.objective
    if obj.r1_weight and obj.name not in CLASSIFYING_OBJECTIVES:
        raise ConfigError(
            f"objective.r1_weight applies to {', '.join(CLASSIFYING_OBJECTIVES)}, not {obj.name} "
            "(wgan-gp has its own penalty, gp_weight); set it to 0"
        )
    if obj.r1_every != 1 and not obj.r1_weight:
        raise ConfigError(f"objective.r1_every={obj.r1_every} has no effect without objective.r1_weight > 0; set it to 1")
    if obj.r1_weight and critic.norm == "batch":
        raise ConfigError(
            "critic.norm=batch cannot be used with objective.r1_weight > 0: R1 is a per-sample gradient and "
            "batch norm mixes samples; use layer, none or spectral"
        )
    if obj.feature_matching_weight and not obj.adversarial:
        raise ConfigError(
            f"objective.feature_matching_weight needs a critic; objective.name={obj.name} has none "
            f"(choose one of {', '.join(ADVERSARIAL_OBJECTIVES)} or set it to 0)"
        )
    if critic.name == "patch":
        if critic.input != "whole":
            raise ConfigError(
                f"critic.input={critic.input} cannot be used with critic.name=patch: its cells are labelled by "
                "where the hole is in the whole image; use critic.input=whole"
            )
        try:
            patch_field(critic)
        except ValueError as err:
            raise ConfigError(f"critic.{err}") from None
    if obj.mask_aware_labels and critic.name != "patch":
        raise ConfigError(
            f"objective.mask_aware_labels needs critic.name=patch (a score per patch), got {critic.name}; "
            "set it to false"
        )
    if obj.mask_aware_labels and obj.name not in CLASSIFYING_OBJECTIVES:
        raise ConfigError(
            f"objective.mask_aware_labels labels cells real or fake: it applies to "
            f"{', '.join(CLASSIFYING_OBJECTIVES)}, not {obj.name}"
        )
    if gen.realism_residual and not obj.adversarial:
        raise ConfigError(
            f"generator.realism_residual is trained by a critic; objective.name={obj.name} has none "
            f"(choose one of {', '.join(ADVERSARIAL_OBJECTIVES)} or set it to false)"
        )
    if gen.contextual_attention:
        sizes = GENERATORS.get(gen.name).attention_sizes(gen)
        if not sizes:
            raise ConfigError(f"generator.contextual_attention needs generator.name=unet, got {gen.name}; set it to 0")
        if gen.contextual_attention not in sizes:
            raise ConfigError(
                f"generator.contextual_attention={gen.contextual_attention}: this unet's decoder makes "
                f"{', '.join(map(str, sizes))}-px maps (32 needs generator.aligned_output=true)"
            )


def _check_name(key: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: unknown value {value!r}{close_match_hint(value, allowed)}; allowed: {', '.join(allowed)}")


def close_match_hint(word: str, candidates: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- building


def build_dataclass(cls: type, values: Any, key: str = "") -> Any:
    """Build dataclass `cls` from a mapping, checking keys and types recursively.

    Raises ConfigError naming the dotted `key` of the first bad value.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping, got {type(values).__name__} {values!r}")
    hints, names = _fields_of(cls)
    kwargs = {}
    for name, raw in values.items():
        dotted = f"{key}.{name}" if key else str(name)
        if name not in names:
            raise ConfigError(f"{dotted}: unknown key{close_match_hint(str(name), names)}; allowed: {', '.join(names)}")
        kwargs[name] = _coerce(hints[name], raw, dotted)
    try:
        return cls(**kwargs)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{key}.{err}" if key else str(err)) from None


@functools.cache
def _fields_of(cls: type) -> tuple[dict[str, Any], list[str]]:
    """A dataclass's resolved field types and field names (resolving annotations is slow; search spaces build
    hundreds of configs at load)."""
    return typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]


def _coerce(hint: Any, raw: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, raw, key)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            shown = ", ".join(str(a) for a in allowed)
            raise ConfigError(f"{key}: {raw!r} is not allowed{close_match_hint(str(raw), [str(a) for a in allowed])}; allowed: {shown}")
        return raw
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if raw is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(inner, raw, key)
    if origin is tuple:
        items = typing.get_args(hint)
        if len(items) == 2 and items[1] is Ellipsis:  # tuple[str, ...]: a list of any length
            if not isinstance(raw, (list, tuple)):
                raise ConfigError(f"{key}: expected a list, got {type(raw).__name__} {raw!r}")
            return tuple(_coerce(items[0], v, f"{key}[{i}]") for i, v in enumerate(raw))
        if not isinstance(raw, (list, tuple)) or len(raw) != len(items):
            raise ConfigError(f"{key}: expected a list of {len(items)} numbers, got {raw!r}")
        return tuple(_coerce(t, v, f"{key}[{i}]") for i, (t, v) in enumerate(zip(items, raw)))
    return _coerce_scalar(hint, raw, key)


def _coerce_scalar(hint: type, raw: Any, key: str) -> Any:
    if hint is bool:
        if isinstance(raw, bool):
            return raw
    elif hint is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
    elif hint is float:
        number = None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            number = float(raw)
        elif isinstance(raw, str):
            # YAML 1.1 reads `1e-5` (no dot) as a string; accept what float() accepts.
            try:
                number = float(raw)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):  # YAML's .inf and .nan: no loss weight or rate is infinite
                raise ConfigError(f"{key}: must be a finite number, got {raw!r}")
            return number
    elif hint is str:
        if isinstance(raw, str):
            return raw
    else:  # pragma: no cover - a field type this loader does not know is a bug
        raise TypeError(f"unsupported config field type {hint} at {key}")
    raise ConfigError(f"{key}: expected {hint.__name__}, got {type(raw).__name__} {raw!r}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of a config (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


# ---------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """`objective.l2_weight=1e-5` -> ("objective.l2_weight", 1e-05); values parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. objective.l2_weight=1e-5")
    parsed = parse_yaml(value, f"--set {text!r}: value") if value.strip() else None
    return key.strip(), parsed


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating sections as needed; a scalar in the way is an error."""
    node = values
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts[: depth + 1])} is a value, not a section; cannot set {key}")
        node = child
    node[parts[-1]] = value


SECTIONS = tuple(f.name for f in dataclasses.fields(ExperimentConfig))


def build_config(base: dict[str, Any], overrides: list[str] = (), source: str = "config") -> ExperimentConfig:
    """Validated ExperimentConfig from a `base` mapping plus `KEY=VALUE` overrides."""
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: expected a mapping of config sections ({', '.join(SECTIONS)}), "
                          f"got {type(base).__name__}")
    values = copy.deepcopy(base)
    for text in overrides:
        key, value = parse_override(text)
        try:
            set_dotted(values, key, value)
        except ConfigError as err:
            raise ConfigError(f"--set {text!r}: {err}") from None
    try:
        cfg = build_dataclass(ExperimentConfig, values)
        check_combinations(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cfg


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"betas": [0.5, 0.9]}} -> {"optim.betas": [0.5, 0.9]}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# ---------------------------------------------------------------- files

SPACE_SECTIONS = ("description", "base", "search", "metric", "mode", "objectives", "constraints", "tune",
                  "schedule")
SEARCH_SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"


def _refuse_duplicate_keys(root: yaml.Node | None) -> None:
    """ConstructorError at the second of two equal keys in any mapping (plain YAML keeps the last, silently).

    Walks the composed node tree (no object is built). Keys compare by tag and
    text; YAML's merge key (`<<: *defaults`, overridable by the keys beside it)
    and complex keys (refused by safe_load itself) are skipped.
    """
    pending, seen_nodes = [root] if root is not None else [], set()
    while pending:
        node = pending.pop()
        if id(node) in seen_nodes:  # an alias: its node was walked at its anchor
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                pending.append(value_node)
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key_node.value!r} given twice (first on line {first_line[key]})",
                        key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1


def parse_yaml(text: str, where: str) -> Any:
    """Safe-load YAML `text` (no tags, no duplicate keys), or ConfigError naming `where`, the line and the problem."""
    try:
        # The one YAML reader: yaml.safe_load's own steps (SafeLoader: no tags, no objects), with the
        # parsed node tree checked for duplicate keys before the data is built.
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            _refuse_duplicate_keys(root)
            return loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}:{at} not valid YAML ({problem})") from None


def read_yaml(path: Path, what: str = "search space", expected: str = ", ".join(SPACE_SECTIONS)) -> dict[str, Any]:
    """A YAML mapping from `path`, or ConfigError naming the file and the problem.

    `what` names the kind of file in messages; `expected` lists the keys a mapping should hold.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file (byte 0x{data[err.start]:02x} at offset {err.start} is not "
                          f"UTF-8); a {what} is a YAML text file") from None
    values = parse_yaml(text, str(path))
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a {what} must be a YAML mapping ({expected}), got {type(values).__name__}")
    return values


def resolve_space(name_or_path: str) -> Path:
    """A search-space name (`wgan`) or a path to a YAML file -> the file's path."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if candidate.suffix in (".yaml", ".yml"):
        raise ConfigError(f"{name_or_path}: no such file")
    path = SEARCH_SPACES_DIR / f"{name_or_path}.yaml"
    if path.is_file():
        return path
    names = list_spaces()
    raise ConfigError(
        f"unknown search space {name_or_path!r}{close_match_hint(name_or_path, names)}; "
        f"choose one of {', '.join(names)} or give a path to a YAML file"
    )


def list_spaces() -> list[str]:
    return sorted(p.stem for p in SEARCH_SPACES_DIR.glob("*.yaml"))


def load_space_file(name_or_path: str) -> tuple[Path, dict[str, Any]]:
    """Read a search-space (or plain config) YAML and check its top-level sections."""
    path = resolve_space(name_or_path)
    values = read_yaml(path)
    for section in values:
        if section not in SPACE_SECTIONS:
            raise ConfigError(
                f"{path}: {section}: unknown section{close_match_hint(str(section), list(SPACE_SECTIONS))}; "
                f"allowed: {', '.join(SPACE_SECTIONS)}"
            )
    if "base" not in values:
        raise ConfigError(f"{path}: missing the `base:` section (the full fixed config)")
    if not isinstance(values["base"] or {}, dict):
        raise ConfigError(f"{path}: base: expected a mapping of config sections ({', '.join(SECTIONS)}), "
                          f"got {type(values['base']).__name__}")
    return path, values


def load_config(name_or_path: str, overrides: list[str] = ()) -> ExperimentConfig:
    """The validated base config of a search space (or a best_config.yaml)."""
    path, values = load_space_file(name_or_path)
    return build_config(values["base"] or {}, overrides, source=str(path))
