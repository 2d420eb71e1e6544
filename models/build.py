"""Networks from their typed options: the registry lookup plus the sizes the options do not hold."""

from torch import nn

from models.options import CaptionOptions, CriticOptions, GeneratorOptions
from models.registry import CAPTION_ENCODERS, CRITICS, GENERATORS


def build_generator(opts: GeneratorOptions, caption_dim: int = 0) -> nn.Module:
    """The generator `opts.name`; `caption_dim` is the caption code's length (0 = no captions)."""
    return GENERATORS.get(opts.name)(opts, caption_dim)


def build_critic(opts: CriticOptions, input_size: int) -> nn.Module:
    """The critic `opts.name` for square inputs of `input_size` (64 for `whole`, 32 + 2m for `center`)."""
    return CRITICS.get(opts.name)(opts, input_size)


def build_caption_encoder(opts: CaptionOptions, vocab_size: int) -> nn.Module:
    """The caption encoder `opts.encoder` over a vocabulary of `vocab_size` ids (0 padding, 1 unknown)."""
    if not opts.enabled:
        raise ValueError("encoder: 'none' has no caption encoder to build; check CaptionOptions.enabled first")
    return CAPTION_ENCODERS.get(opts.encoder)(opts, vocab_size)
