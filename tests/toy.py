"""A toy language model for the decoding tests (microbeam, microspeculative): the
script's own microgpt model over a three-token vocabulary, with larger initial weights
so its distributions are peaked, seen through the script's language_model()."""

import random

BOS = 2  # a toy vocabulary: tokens 0 and 1, and BOS = 2 to start and end


def toy_lm(script, seed, monkeypatch, std, vocab=3):
    """(params, lm) of a random model of `script` with INIT_STD = std instead of 0.08;
    lm(prefix) gives the next-token probabilities."""
    monkeypatch.setattr(script, "INIT_STD", std)
    random.seed(seed)
    params = script.init_params(vocab)
    return params, script.language_model(params)
