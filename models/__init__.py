"""The networks: generators, critics and caption encoders, registered by name.

Importing this package fills the registries; `build_*` construct a network
from its typed options.
"""

from models.registry import CAPTION_ENCODERS, CRITICS, GENERATORS

# Registration happens on import of each module.
from models import captions, critics, generators  # noqa: E402,F401
from models.build import build_caption_encoder, build_critic, build_generator  # noqa: E402
from models.conditioned import ConditionedGenerator  # noqa: E402

__all__ = [
    "CAPTION_ENCODERS",
    "CRITICS",
    "ConditionedGenerator",
    "GENERATORS",
    "build_caption_encoder",
    "build_critic",
    "build_generator",
]
