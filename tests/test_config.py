"""The typed config: YAML loading, overrides, and one clear error per mistake."""

import textwrap

import pytest

from raysearch.config import (
    ExperimentConfig,
    build_config,
    config_to_dict,
    list_spaces,
    load_config,
    load_space_file,
)
from raysearch.errors import ConfigError

SHIPPED_SPACES = ["captions", "dcgan", "l2", "wgan", "wgan_gp"]


@pytest.mark.parametrize("space", SHIPPED_SPACES)
def test_every_shipped_space_builds_a_valid_config(space):
    cfg = load_config(space)
    assert isinstance(cfg, ExperimentConfig)
    assert space in list_spaces()


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
