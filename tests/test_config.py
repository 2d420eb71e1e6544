"""The typed config: YAML loading, overrides, and one clear error per mistake."""

import textwrap

import pytest

from raysearch.config import (
    ExperimentConfig,
    build_config,
    config_to_dict,
    flatten,
    list_spaces,
    load_config,
    load_space_file,
)
from raysearch.errors import ConfigError

SHIPPED_SPACES = list_spaces()  # every YAML in search_spaces/, whatever is added later


@pytest.mark.parametrize("space", SHIPPED_SPACES)
def test_every_shipped_space_builds_a_valid_config(space):
    cfg = load_config(space)
    assert isinstance(cfg, ExperimentConfig)
    # The built config is the file's base exactly: written back and built again, nothing is lost or defaulted.
    assert build_config(config_to_dict(cfg), source=space) == cfg
    assert len(SHIPPED_SPACES) >= 7 and {"l2", "wgan", "seed000_cnn", "seed001_unet_wgan"} <= set(SHIPPED_SPACES)


def test_overrides_reach_typed_fields():
    cfg = load_config("wgan", ["objective.l2_weight=1e-5", "train.critic_steps=3", "optim.betas=[0.5, 0.9]"])
    assert cfg.objective.l2_weight == pytest.approx(1e-5)
    assert cfg.train.critic_steps == 3
    assert cfg.optim.betas == (0.5, 0.9)


def test_yaml_11_exponent_without_dot_is_read_as_float(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base:\n  optim: {generator_lr: 1e-4}\n")
    assert load_config(str(path)).optim.generator_lr == pytest.approx(1e-4)


def test_config_round_trips_through_a_plain_dict():
    cfg = load_config("dcgan")
    assert build_config(config_to_dict(cfg)) == cfg


def _error(base, overrides=(), source="space.yaml", starts=None):
    with pytest.raises(ConfigError) as info:
        build_config(base, list(overrides), source=source)
    message = str(info.value)
    assert "\n" not in message, "one line"
    assert message.startswith(starts or source)
    return message


def test_unknown_key_names_the_key_and_suggests():
    message = _error({"objective": {"l2_wieght": 1.0}})
    assert "objective.l2_wieght" in message and "l2_weight" in message


def test_unknown_section_names_it():
    message = _error({"optimiser": {}})
    assert "optimiser" in message and "optim" in message


def test_wrong_type_names_key_and_type():
    message = _error({"train": {"batch_size": "big"}})
    assert "train.batch_size" in message and "int" in message


def test_bool_is_not_an_int():
    assert "train.epochs" in _error({"train": {"epochs": True}})


def test_bad_enum_lists_allowed_values():
    message = _error({"objective": {"name": "wgann"}})
    assert "objective.name" in message and "wgan-gp" in message and "'wgan'" in message


def test_out_of_range_value_names_key_and_range():
    message = _error({"generator": {"kernel_size": 4}})
    assert "generator.kernel_size" in message and "odd" in message


def test_unknown_generator_lists_registered_names():
    message = _error({"generator": {"name": "unett"}})
    assert "generator.name" in message and "unet" in message and "autoencoder" in message


@pytest.mark.parametrize(
    "base, words",
    [
        ({"objective": {"name": "wgan-gp", "adv_weight": 1.0}, "critic": {"norm": "batch"}}, ["critic.norm=batch", "wgan-gp"]),
        ({"objective": {"name": "nsgan", "adv_weight": 1.0}, "generator": {"output_activation": "clip"}}, ["clip", "wgan"]),
        ({"objective": {"name": "l2", "adv_weight": 0.5}}, ["adv_weight", "l2"]),
        ({"objective": {"name": "gan", "adv_weight": 0.0}}, ["adv_weight", "gan"]),
        ({"objective": {"name": "wgan", "adv_weight": 1.0, "label_smoothing": 0.1}}, ["label_smoothing", "wgan"]),
        ({"train": {"critic_steps": 5, "generator_steps": 2}}, ["critic_steps", "generator_steps"]),
    ],
)
def test_invalid_combinations_name_the_options(base, words):
    message = _error(base)
    for word in words:
        assert word in message


def test_bad_override_syntax():
    # A mistake on the command line names the flag, not the YAML file.
    message = _error({}, ["objective.l2_weight"], source="l2.yaml", starts="--set 'objective.l2_weight'")
    assert "KEY=VALUE" in message


def test_override_through_a_value_is_rejected():
    message = _error({"train": {"epochs": 2}}, ["train.epochs.x=1"], starts="--set 'train.epochs.x=1'")
    assert "train.epochs is a value" in message


def test_unknown_space_lists_shipped_ones():
    with pytest.raises(ConfigError) as info:
        load_space_file("wgna")
    assert "wgan" in str(info.value)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent("""\
        base:
          train: {epochs: 2
        """))
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_unknown_top_level_section(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base: {}\nserach: {}\n")
    with pytest.raises(ConfigError) as info:
        load_space_file(str(path))
    assert "serach" in str(info.value) and "search" in str(info.value)


def test_yaml_anchors_and_merge_keys_still_work_beside_the_duplicate_key_check(tmp_path):
    # `<<: *x` followed by a key it already holds overrides it: that is YAML's merge, not a key given twice.
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent("""\
        base:
          optim: &adam {name: adam, generator_lr: 1.0e-3}
          train: {epochs: 2}
        description: {<<: *adam, generator_lr: 2.0e-3}
        """))
    assert load_config(str(path)).optim.generator_lr == 1e-3


def test_a_duplicate_key_anywhere_names_the_file_and_both_lines(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base:\n  train: {epochs: 2}\n  optim: {name: adam}\n  train: {epochs: 3}\n")
    with pytest.raises(ConfigError, match=r"space.yaml: line 4 column 3 not valid YAML \(key 'train' given twice "
                                          r"\(first on line 2\)\)"):
        load_config(str(path))


def test_a_yaml_tag_is_still_refused(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(path))
    assert not (tmp_path / "pwned.txt").exists()


# ---------------------------------------------------------------- recipes of current inpainting models

RECIPE_DEFAULTS = {
    "objective.r1_weight": 0.0, "objective.r1_every": 1, "objective.feature_matching_weight": 0.0,
    "objective.mask_aware_labels": False, "generator.contextual_attention": 0, "generator.realism_residual": False,
}

NSGAN = {"name": "nsgan", "adv_weight": 1.0}
PATCH = {"name": "patch", "depth": 2, "norm": "spectral"}


RECIPE_SPACE = "realism"  # the one space built on the recipes: every other keeps the seeds' behaviour


SEED_SPACES = [space for space in SHIPPED_SPACES if space != RECIPE_SPACE]


@pytest.mark.parametrize("space", SEED_SPACES + ["seed000_cnn", "seed001_unet_wgan"])
def test_the_shipped_spaces_keep_every_recipe_off(space):
    flat = flatten(config_to_dict(load_config(space)))
    assert {key: flat[key] for key in RECIPE_DEFAULTS} == RECIPE_DEFAULTS
    assert flat["critic.name"] == "conv" and not flat["generator.noise_map"]


def test_the_realism_space_turns_on_the_recipes_it_was_measured_with():
    flat = flatten(config_to_dict(load_config(RECIPE_SPACE)))
    assert flat["critic.name"] == "patch" and flat["critic.norm"] == "spectral" and flat["objective.name"] == "hinge"
    assert flat["objective.mask_aware_labels"] and flat["objective.feature_matching_weight"] > 0
    assert flat["generator.realism_residual"] and flat["generator.noise_map"]


@pytest.mark.parametrize(
    "base",
    [
        {"objective": {**NSGAN, "r1_weight": 5.0, "r1_every": 16, "mask_aware_labels": True,
                       "feature_matching_weight": 10.0}, "critic": PATCH},
        {"objective": {"name": "hinge", "adv_weight": 1.0, "r1_weight": 0.1}, "critic": {"norm": "spectral"}},
        {"objective": {"name": "wgan-gp", "adv_weight": 1.0, "feature_matching_weight": 1.0},
         "critic": {**PATCH, "norm": "layer"}},
        {"objective": NSGAN, "generator": {"contextual_attention": 32, "aligned_output": True, "realism_residual": True}},
        {"objective": NSGAN, "generator": {"contextual_attention": 16}},
    ],
    ids=["lama", "hinge-spectral-r1", "patch-wgan-gp-fm", "attention32-realism", "attention16"],
)
def test_the_recipes_build_where_they_apply(base):
    cfg = build_config(base)
    assert cfg.objective.name in ("nsgan", "hinge", "wgan-gp")


@pytest.mark.parametrize(
    "base, words",
    [
        ({"objective": {"name": "wgan-gp", "adv_weight": 1.0, "r1_weight": 1.0}, "critic": {"norm": "layer"}},
         ["objective.r1_weight", "gan, nsgan, hinge", "not wgan-gp"]),
        ({"objective": {**NSGAN, "r1_every": 4}}, ["objective.r1_every=4", "r1_weight > 0"]),
        ({"objective": {**NSGAN, "r1_weight": 1.0}}, ["critic.norm=batch", "r1_weight", "layer, none or spectral"]),
        ({"objective": {"feature_matching_weight": 1.0}}, ["objective.feature_matching_weight", "needs a critic", "l2"]),
        ({"objective": {**NSGAN, "mask_aware_labels": True}}, ["objective.mask_aware_labels", "critic.name=patch"]),
        ({"objective": {"name": "wgan", "adv_weight": 1.0, "mask_aware_labels": True}, "critic": PATCH},
         ["objective.mask_aware_labels", "not wgan"]),
        ({"objective": NSGAN, "critic": {**PATCH, "input": "center"}}, ["critic.input=center", "critic.name=patch"]),
        ({"objective": NSGAN, "critic": {"name": "patch"}}, ["critic.depth", "sees 125 px", "depth 2: 29 px"]),
        ({"generator": {"realism_residual": True}}, ["generator.realism_residual", "objective.name=l2"]),
        ({"generator": {"name": "cnn", "contextual_attention": 16}}, ["generator.contextual_attention", "unet", "cnn"]),
        ({"generator": {"contextual_attention": 32}}, ["generator.contextual_attention=32", "8, 16", "aligned_output"]),
        ({"generator": {"contextual_attention": 8}}, ["generator.contextual_attention", "0 (none), 16 or 32"]),
        ({"objective": {"r1_weight": -1.0}}, ["objective.r1_weight", ">= 0"]),
        ({"objective": {"r1_every": 0}}, ["objective.r1_every", "1 to 64"]),
        ({"objective": {"feature_matching_weight": -0.5}}, ["objective.feature_matching_weight", ">= 0"]),
        ({"objective": {"mask_aware_labels": "yes"}}, ["objective.mask_aware_labels", "bool"]),
        ({"critic": {"name": "patchgan"}}, ["critic.name", "did you mean 'patch'"]),
    ],
    ids=["r1-wgan-gp", "r1-every-alone", "r1-batch-norm", "fm-without-critic", "mask-aware-conv", "mask-aware-wgan",
         "patch-center", "patch-too-deep", "realism-l2", "attention-cnn", "attention-32-unaligned", "attention-8",
         "r1-negative", "r1-every-0", "fm-negative", "mask-aware-type", "critic-name"],
)
def test_each_recipe_is_refused_in_one_line_where_it_cannot_apply(base, words):
    message = _error(base)
    for word in words:
        assert word in message, (word, message)


def test_compile_with_wgan_gp_is_rejected_in_one_line():
    with pytest.raises(ConfigError, match="train.compile=true cannot be used with objective.name=wgan-gp") as err:
        load_config("wgan_gp", ["train.compile=true"])
    assert "\n" not in str(err.value)
