"""The generator with its caption encoder: one module holding everything the generator step trains and a
checkpoint's `generator` entry holds."""

from __future__ import annotations

from torch import Tensor, nn

from models.build import build_caption_encoder, build_generator
from models.options import CaptionOptions, GeneratorOptions


class ConditionedGenerator(nn.Module):
    """`generator` conditioned on the captions `captions` names (none: the generator alone)."""

    def __init__(self, generator: GeneratorOptions, captions: CaptionOptions, vocab_size: int) -> None:
        super().__init__()
        self.caption_encoder = build_caption_encoder(captions, vocab_size) if captions.enabled else None
        self.num_captions = captions.num_captions
        self.generator = build_generator(generator, caption_dim=captions.code_size if captions.enabled else 0)

    def forward(self, context: Tensor, tokens: Tensor, noise: Tensor | None,
                return_paths: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The raw center; with `return_paths` (a `realism_residual` generator) its (L2 path, realism residual)."""
        code = self.caption_encoder(tokens[:, : self.num_captions]) if self.caption_encoder is not None else None
        if return_paths:
            return self.generator(context, code, noise, return_paths=True)
        return self.generator(context, code, noise)
