"""Exhaustive-token-search throughput: the paper's approach vs rmvalues' prefix-cached engine.

One random-init Llama-architecture RM with realistic layer shapes scaled to CPU (hidden 512, 4
layers, the full 128,256-token Llama-3 vocabulary), the real Llama-3.1 chat template with its system
header, one prompt, the same 4,096 token candidates:

(a) the paper's approach: decode each token, ``apply_chat_template(tokenize=False)``, re-tokenise
    with default special tokens, right-pad to batches of 64 and run the full conversation;
(b) ours: prefix ids + [token id] + suffix ids, the prefix prefilled once and its KV cache reused,
    only response + suffix tokens run per candidate, batch 64.

Prints candidates/s of both, the ratio, and the compute bound (prefix + response + suffix tokens) /
(response + suffix tokens): the factor by which caching the prefix cuts the tokens a candidate runs.
Also checks ours against an id-exact full forward per conversation (the reference path).

    python benchmarks/ets_throughput.py [--threads 2] [--candidates 4096] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

PROMPT = "What, in one word, is the best thing ever?"


def build_model(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaModel

    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=512, intermediate_size=1792,
                         num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                         max_position_embeddings=4096)
    torch.manual_seed(seed)
    backbone = LlamaModel(config).eval()
    return backbone, SequenceClassificationHead.seeded(config.hidden_size, seed=seed)


def paper_approach(rm, split, candidates, batch_size: int) -> np.ndarray:
    """decode -> template -> re-tokenise (double BOS) -> right-padded full forward, batch 64.

    Shared with ``gpu_ets.py`` (any device: the batch goes to the backbone's device)."""
    from rmvalues.models.chat import render_conversation

    tok = rm.tokenizer
    pad = tok.eos_token_id
    scores = []
    for start in range(0, len(candidates), batch_size):
        texts = [render_conversation(tok, PROMPT, tok.decode([t]), template=split.template)
                 for t in candidates.token_ids[start:start + batch_size]]
        encoded = [tok(text)["input_ids"] for text in texts]
        width = max(map(len, encoded))
        ids = torch.tensor([e + [pad] * (width - len(e)) for e in encoded], device=rm.device)
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded],
                            device=rm.device)
        with torch.inference_mode():
            hidden = rm.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(len(encoded), device=rm.device), mask.sum(1) - 1]
            scores.append(rm.head(last.float()).cpu().numpy())
    return np.concatenate(scores)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated torch thread counts to measure (both approaches)")
    parser.add_argument("--candidates", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64, help="paper approach batch size")
    parser.add_argument("--engine-batch-size", type=int, default=None,
                        help="our batch size (default: --batch-size); a candidate runs 2 tokens "
                             "instead of ~50, so larger batches fit the same memory")
    parser.add_argument("--check", type=int, default=256, help="candidates checked vs reference")
    parser.add_argument("--slice", type=int, default=256, help="candidates per timed slice")
    args = parser.parse_args()

    from rmvalues.engines.candidates import vocabulary_candidates
    from rmvalues.engines.reference import reference_score
    from rmvalues.engines.score import Engine
    from rmvalues.models.chat import split_chat
    from rmvalues.models.loading import RewardModel
    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    backbone, head = build_model(len(tok))
    rm = RewardModel(name="bench-llama", source="random-init", backbone=backbone, head=head,
                     tokenizer=tok)
    split = split_chat(tok, PROMPT)
    rng = np.random.default_rng(0)
    ids = sorted(rng.choice(len(tok), size=args.candidates, replace=False).tolist())
    candidates = vocabulary_candidates(tok, ids)
    engine = Engine(rm, batch_size=args.engine_batch_size or args.batch_size)

    prefix, continuation = len(split.prefix_ids), 1 + len(split.suffix_ids)
    bound = (prefix + continuation) / continuation
    n = len(candidates)
    print(f"model: random-init Llama, hidden 512, 4 layers, vocab {len(tok):,}; "
          f"Llama-3.1 template; batch {args.batch_size} (paper) / "
          f"{engine.runner.batch_size} (ours)")
    print(f"candidates: {n:,} token ids; prefix {prefix} tokens, response + suffix "
          f"{continuation} tokens per candidate")
    print(f"compute bound (prefix + response + suffix) / (response + suffix) = "
          f"({prefix} + {continuation}) / {continuation} = {bound:.1f}x")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        # warm-up (allocator, kernels) on one batch each
        engine.score_prompt(split, candidates.subset(range(args.batch_size)))
        paper_approach(rm, split, candidates.subset(range(args.batch_size)), args.batch_size)
        # The two approaches alternate slice by slice, so load from other processes on a shared
        # machine hits both alike.
        paper_parts, ours_parts, t_paper, t_ours = [], [], 0.0, 0.0
        for first in range(0, n, args.slice):
            part = candidates.subset(range(first, min(first + args.slice, n)))
            scores, seconds = timed(lambda part=part: paper_approach(rm, split, part,
                                                                     args.batch_size))
            paper_parts.append(scores)
            t_paper += seconds
            scores, seconds = timed(lambda part=part: engine.score_prompt(split, part))
            ours_parts.append(scores)
            t_ours += seconds
        paper, ours = np.concatenate(paper_parts), np.concatenate(ours_parts)
        print(f"--- {threads} CPU thread(s)")
        print(f"(a) paper approach (decode -> template -> re-tokenise -> padded full forward): "
              f"{n / t_paper:,.0f} candidates/s ({t_paper:.2f} s)")
        print(f"(b) rmvalues prefix-cached engine: {n / t_ours:,.0f} candidates/s ({t_ours:.2f} s)")
        print(f"ratio (b)/(a): {t_paper / t_ours:.1f}x (compute bound {bound:.1f}x)")
    check = rng.choice(n, size=min(args.check, n), replace=False)
    conversations = [split.token_ids(candidates.token_ids[i]) for i in check]
    delta = np.abs(ours[check] - reference_score(rm, conversations)).max()
    print(f"max |ours - id-exact full forward| over {len(check)} candidates: {delta:.2g}")
    print(f"mean |ours - paper approach| (different inputs: double BOS, lossy round trip): "
          f"{np.abs(ours - paper).mean():.3g}")


if __name__ == "__main__":
    main()
