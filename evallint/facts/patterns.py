"""Name patterns the facts layer uses to recognise evaluation code and data.

Each is a regular expression matched against a snake_cased identifier; teams can
override them in `[tool.evallint]` under the keys of `DEFAULTS`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DATA_SUFFIX = r"(?:_|$|loader|set|data|dl|ds|iter|dataset|gen|generator|batches|samples|split|x|y)"

DEFAULTS = {
    # function names that make a body an evaluation context
    "eval-function-pattern": r"(?:^|_)(?:eval|evaluate|evaluation|evaluating|valid|validate|validation|val|test|testing|infer|inference|predict|prediction|predictions|score|benchmark)(?:_|$)",
    # iterables / variables that hold evaluation data
    "eval-data-pattern": r"(?:^|_)(?:val|valid|validation|test|testing|eval|evaluation|dev|holdout|heldout)" + _DATA_SUFFIX,
    # variables that hold training data
    "train-data-pattern": r"(?:^|_)(?:train|training|trn)" + _DATA_SUFFIX,
    # variables that hold a model
    "model-pattern": r"^(?:model|net|network|classifier|clf_net|encoder|decoder|backbone|cnn|rnn|lstm|gru|mlp|transformer|generator|discriminator|teacher|student|autoencoder|vae|unet|resnet|vgg|bert|gpt|policy|critic|actor|detector|segmenter|regressor|predictor|module)\d*$|(?:^|_)(?:model|net|network|classifier|encoder|backbone)\d*$|^(?:model|net)_",
    # iterables that yield batches
    "loader-pattern": r"(?:loader|dl|dataloader|batches|batch_iter|iterator|generator|data_iter)\d*$|^(?:loader|dl)",
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # NNTest -> nn_test


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


@dataclass(frozen=True)
class NamePatterns:
    eval_function: re.Pattern
    eval_data: re.Pattern
    train_data: re.Pattern
    model: re.Pattern
    loader: re.Pattern

    @classmethod
    def from_strings(cls, overrides: dict[str, str] | None = None) -> "NamePatterns":
        merged = {**DEFAULTS, **(overrides or {})}
        c = lambda k: re.compile(merged[k])  # noqa: E731
        return cls(c("eval-function-pattern"), c("eval-data-pattern"), c("train-data-pattern"),
                   c("model-pattern"), c("loader-pattern"))

    def is_eval_function(self, name: str) -> bool:
        return bool(self.eval_function.search(snake(name)))

    def is_eval_data(self, name: str) -> bool:
        return bool(self.eval_data.search(snake(name)))

    def is_train_data(self, name: str) -> bool:
        return bool(self.train_data.search(snake(name)))

    def is_model(self, name: str) -> bool:
        return bool(self.model.search(snake(name)))

    def is_loader(self, name: str) -> bool:
        return bool(self.loader.search(snake(name)))


DEFAULT_PATTERNS = NamePatterns.from_strings()
