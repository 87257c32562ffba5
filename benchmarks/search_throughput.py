"""Beam-search throughput: candidates scored per second on the prefix-cached engine vs naive
re-scoring of every candidate's full conversation.

The model of ``ets_throughput.py`` (random-init Llama, hidden 512, 4 layers, the full Llama-3
vocabulary and Llama-3.1 template), one prompt, a beam search of width W over k tokens drawn from
the same N token ids:

(a) naive: every candidate ``prefix + partial response + next token + suffix`` runs in full
    (the engine's full-sequence path: same-length batches, no padding, no cache);
(b) ours: the prompt prefix is prefilled once, each beam's cache is extended by its tokens, and a
    candidate runs only its next token + the suffix on that shared cache.

Both searches must find the same responses (checked, with their scores); prints candidates/s of
each and the ratio (b)/(a). Run from the repository root:

    python benchmarks/search_throughput.py [--tokens 1024] [--length 4] [--width 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ets_throughput import PROMPT, build_model


def search(engine, split, space, length: int, width: int):
    from rmvalues.engines.search import ResponseScorer, beam_search

    scorer = ResponseScorer(engine, split)
    start = time.perf_counter()
    outcome = beam_search(scorer, space, length, "max", width=width)
    return outcome, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024, help="allowed token ids (random)")
    parser.add_argument("--length", type=int, default=4)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rmvalues.engines.score import Engine
    from rmvalues.engines.search import token_space
    from rmvalues.models.chat import split_chat
    from rmvalues.models.loading import RewardModel
    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    backbone, head = build_model(len(tok))
    rm = RewardModel(name="bench-llama", source="random-init", backbone=backbone, head=head,
                     tokenizer=tok)
    split = split_chat(tok, PROMPT)
    rng = np.random.default_rng(0)
    space = token_space(tok, sorted(rng.choice(128_000, size=args.tokens, replace=False).tolist()))
    cached = Engine(rm, batch_size=args.batch_size, mode="prefix")
    naive = Engine(rm, batch_size=args.batch_size, mode="full")
    print(f"model: random-init Llama, hidden 512, 4 layers, vocab {len(tok):,}; prefix "
          f"{len(split.prefix_ids)} tokens, suffix {len(split.suffix_ids)}; beam width "
          f"{args.width}, length {args.length}, {len(space.first):,} allowed tokens")
    search(cached, split, token_space(tok, list(space.first[:args.batch_size])), 1, 1)  # warm-up
    ours, t_ours = search(cached, split, space, args.length, args.width)
    base, t_base = search(naive, split, space, args.length, args.width)
    assert [f.token_ids for f in ours.found] == [f.token_ids for f in base.found], \
        "the cached and the naive beam search found different responses"
    delta = max(abs(a.score - b.score) for a, b in zip(ours.found, base.found))
    n = ours.evaluations
    print(f"(a) naive full-conversation re-scoring: {n / t_base:,.0f} candidates/s "
          f"({n:,} in {t_base:.2f} s)")
    print(f"(b) prefix-cached beam search: {n / t_ours:,.0f} candidates/s ({n:,} in {t_ours:.2f} s)")
    print(f"ratio (b)/(a): {t_base / t_ours:.1f}x; same responses found, max |Δ score| "
          f"{delta:.2g}")


if __name__ == "__main__":
    main()
