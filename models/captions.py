"""Caption encoders: token ids [B, K, L] -> caption code [B, code_size].

K captions per image (the loop passes the first `num_captions`), L tokens
each, right-padded with 0 (1 is the unknown word). Each caption is summarised
on its own (a multi-hot bag of words, or a recurrent net's last hidden
state), the summaries are averaged over the image's non-empty captions (an
all-padding caption is ignored; an image with none gets a zero summary), and a
dense layer + ReLU (seed 000's Lasagne DenseLayer default) makes the code.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from models.options import CaptionOptions
from models.registry import CAPTION_ENCODERS

PAD = 0


class CaptionEncoder(nn.Module):
    """Shared: shape checks, the average over captions, the output layer.

    A subclass sets `summary_size` and implements `summarize(tokens [N, L]) -> [N, summary_size]`.
    """

    summary_size: int

    def __init__(self, opts: CaptionOptions, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size: must be >= 2 (0 is padding, 1 unknown), got {vocab_size}")
        self.vocab_size = vocab_size
        self.code_size = opts.code_size

    def build_output(self) -> None:
        self.output = nn.Sequential(nn.Linear(self.summary_size, self.code_size), nn.ReLU())

    def summarize(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"tokens: expected shape [B, K, L], got {list(tokens.shape)}")
        batch, captions, length = tokens.shape
        flat = tokens.reshape(batch * captions, length)
        summaries = self.summarize(flat).view(batch, captions, -1)
        present = (flat != PAD).any(dim=1).view(batch, captions, 1).to(summaries.dtype)
        mean = (summaries * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)
        return self.output(mean)


@CAPTION_ENCODERS.register("bow")
class BagOfWords(CaptionEncoder):
    """Seed 000: per caption a multi-hot vector over the vocabulary (padding left out)."""

    def __init__(self, opts: CaptionOptions, vocab_size: int) -> None:
        super().__init__(opts, vocab_size)
        self.summary_size = vocab_size
        self.build_output()

    def summarize(self, tokens: torch.Tensor) -> torch.Tensor:
        # scatter, not one_hot: [N, L, V] floats would be ~100x bigger.
        words = torch.zeros(tokens.shape[0], self.vocab_size, device=tokens.device, dtype=self.output[0].weight.dtype)
        words.scatter_(1, tokens, 1.0)
        words[:, PAD] = 0.0
        return words


class RecurrentEncoder(CaptionEncoder):
    """Embedding (padding id 0) -> recurrent net over each caption's valid tokens -> last hidden state."""

    rnn_type: type[nn.RNNBase]

    def __init__(self, opts: CaptionOptions, vocab_size: int) -> None:
        super().__init__(opts, vocab_size)
        self.embedding = nn.Embedding(vocab_size, opts.embedding_dim, padding_idx=PAD)
        self.rnn = self.rnn_type(opts.embedding_dim, opts.hidden_size, batch_first=True)
        self.summary_size = opts.hidden_size
        self.build_output()

    def summarize(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
        # Up to the last real token; an all-padding caption runs one step (then
        # the average over captions drops it): packing refuses length 0.
        lengths = (positions * (tokens != PAD)).amax(dim=1).clamp(min=1)
        packed = pack_padded_sequence(self.embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        return hidden[-1]


@CAPTION_ENCODERS.register("lstm")
class LSTMEncoder(RecurrentEncoder):
    rnn_type = nn.LSTM


@CAPTION_ENCODERS.register("gru")
class GRUEncoder(RecurrentEncoder):
    rnn_type = nn.GRU
