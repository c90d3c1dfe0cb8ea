"""``ptb_lstm``: a 2-layer LSTM word language model on Penn Treebank (paper: batch 20; 25/39 epochs).

The "medium" model of Zaremba, Sutskever & Vinyals, "Recurrent Neural Network Regularization"
(2014): embedding and 2 LSTM layers of 650 units, dropout 0.5 on the non-recurrent connections,
an untied linear decoder, weights uniform in ±0.05, sequences of 35 tokens, batch 20, 39 epochs.

Data: Mikolov's preprocessed PTB, ``ptb.train.txt``, ``ptb.valid.txt`` and ``ptb.test.txt``,
read from ``<data_dir>/ptb/`` or else ``<data_dir>/`` (10,000 word types including ``<unk>``;
every line ends with ``<eos>``). The vocabulary comes from the training file in order of first
appearance; validation is the official ``ptb.valid.txt``. Each file's token stream is cut into
non-overlapping ``bptt``-token (input, next-token target) pairs.

**Departure from the paper:** the runner shuffles items, so each sequence starts from a zero LSTM
state (stateless truncated BPTT) instead of carrying state across batches; perplexities come out
higher than the paper's 82 (test). Metric: perplexity, exp(mean token cross-entropy); failure
value = vocabulary size (a uniform prediction). Parameters: ``hidden`` (650), ``layers`` (2),
``dropout`` (0.5), ``bptt`` (35), ``vocab_size`` (10000: the embedding size; the training file
may not hold more word types).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .base import Splits, Workload, WorkloadError

PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz (its data/ folder)"
FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")


def find_ptb(data_dir: Path) -> Path:
    """The folder holding the three PTB files: ``data_dir/ptb`` or ``data_dir`` itself."""
    for folder in (data_dir / "ptb", data_dir):
        if all((folder / name).is_file() for name in FILES):
            return folder
    raise WorkloadError(
        f"Penn Treebank not found: expected {', '.join(str(data_dir / 'ptb' / name) for name in FILES)}. "
        f"Put Mikolov's ptb.train.txt, ptb.valid.txt and ptb.test.txt in {data_dir / 'ptb'}; "
        f"get them from {PTB_URL}"
    )


def _words(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [word for line in lines for word in [*line.split(), "<eos>"]]


@lru_cache(maxsize=1)
def load_ptb(folder: Path) -> tuple[dict[str, int], torch.Tensor, torch.Tensor, torch.Tensor]:
    """(vocabulary word → id, train / valid / test token ids), words unseen in training → ``<unk>``."""
    train_words = _words(folder / FILES[0])
    vocab: dict[str, int] = {}
    for word in [*train_words, "<unk>"]:
        vocab.setdefault(word, len(vocab))

    def ids(words: list[str]) -> torch.Tensor:
        return torch.tensor([vocab.get(word, vocab["<unk>"]) for word in words], dtype=torch.long)

    return vocab, ids(train_words), ids(_words(folder / FILES[1])), ids(_words(folder / FILES[2]))


class TokenSequences(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Non-overlapping (tokens[i·L : (i+1)·L], tokens[i·L + 1 : (i+1)·L + 1]) pairs, L = ``bptt``."""

    def __init__(self, tokens: torch.Tensor, bptt: int) -> None:
        self.tokens, self.bptt = tokens, bptt

    def __len__(self) -> int:
        return max(0, (int(self.tokens.numel()) - 1) // self.bptt)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.bptt
        return self.tokens[start : start + self.bptt], self.tokens[start + 1 : start + self.bptt + 1]


class LSTMLanguageModel(nn.Module):
    """Embedding → dropout → multi-layer LSTM → dropout → linear; maps (B, L) ids to (B, L, V) logits."""

    def __init__(self, vocab_size: int, hidden: int = 650, layers: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.05, 0.05)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(self.dropout(self.embedding(tokens)))
        return self.decoder(self.dropout(output))


class PtbLSTM(Workload):
    """2-layer LSTM language model on PTB; metric: perplexity."""

    name = "ptb_lstm"
    description = "2-layer LSTM LM, 650 units (Zaremba et al. 2014 medium) on Penn Treebank; stateless BPTT"
    default_epochs = 39
    default_batch_size = 20
    uses_gpu = True

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.params.setdefault("vocab_size", 10000)

    def splits(self, data_dir: Path, seed: int) -> Splits:
        vocab, train, valid, test = load_ptb(find_ptb(Path(data_dir).resolve()))
        if len(vocab) > int(self.params["vocab_size"]):
            raise WorkloadError(
                f"the training file has {len(vocab)} word types but vocab_size is {self.params['vocab_size']}"
            )
        bptt = int(self.params.get("bptt", 35))
        return Splits(TokenSequences(train, bptt), TokenSequences(valid, bptt), TokenSequences(test, bptt))

    def check_data(self, data_dir: Path) -> None:
        find_ptb(Path(data_dir).resolve())

    def build_model(self, seed: int) -> nn.Module:
        return LSTMLanguageModel(
            int(self.params["vocab_size"]),
            hidden=int(self.params.get("hidden", 650)),
            layers=int(self.params.get("layers", 2)),
            dropout=float(self.params.get("dropout", 0.5)),
        )

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = batch
        return nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Any) -> tuple[float, float]:
        total, count = 0.0, 0
        for inputs, targets in batches:
            logits = model(inputs).flatten(0, 1)
            total += float(nn.functional.cross_entropy(logits, targets.flatten(), reduction="sum"))
            count += int(targets.numel())
        if count == 0:
            return math.nan, math.nan
        mean = total / count
        return mean, math.exp(mean) if mean < 700.0 else math.inf  # exp overflows past ~709
