"""LM log-prob throughput: the 54 paper prompts in token-budget batches vs one prompt per forward.

A random-init Llama causal LM with the layer shapes of ``ets_throughput.py`` (hidden 512, 4 layers,
the full 128,256-token Llama-3 vocabulary), the 54 prompts of ``paper-54`` rendered with the real
Llama-3.1 chat template (``--kind instruct``, prompts of many lengths):

(a) one prompt per forward (``batch_size=1``: what bucketing by length amounted to for prompts of
    distinct lengths);
(b) ``next_token_logprobs`` with ``batch_size=64``: all 54 right-padded into one forward (or a few
    under ``--max-batch-tokens``), the last position's logits only.

Prints prompts/s of both, the ratio (b)/(a) and max |(b) - (a)| (must be float rounding only).

    python benchmarks/logprobs_throughput.py [--threads 2] [--repeats 3] [--max-batch-tokens N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def build_lm(vocab_size: int, seed: int = 0):
    """A random-init ``LlamaForCausalLM`` shaped like the RM backbone of ``ets_throughput.py``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=512, intermediate_size=1792,
                         num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, best kept")
    parser.add_argument("--max-batch-tokens", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rmvalues.engines.logprobs import next_token_logprobs
    from rmvalues.models.chat import prompt_input_ids
    from rmvalues.models.tokenizers import bundled_tokenizer
    from rmvalues.prompts import prompt_pairs

    tok = bundled_tokenizer("llama3")
    model = build_lm(len(tok))
    pairs = prompt_pairs("paper-54")[1]
    ids = prompt_input_ids(tok, [text for _, text in pairs], kind="instruct")
    lengths = [len(s) for s in ids]
    print(f"model: random-init Llama LM, hidden 512, 4 layers, vocab {len(tok):,}; "
          f"{args.threads} CPU thread(s)")
    print(f"prompts: {len(ids)} (paper-54, Llama-3.1 instruct template), {len(set(lengths))} "
          f"distinct lengths, {min(lengths)}-{max(lengths)} tokens")

    def run(batch_size: int) -> tuple[np.ndarray, float]:
        best, out = float("inf"), None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = next_token_logprobs(model, ids, vocab_size=len(tok), batch_size=batch_size,
                                      max_batch_tokens=args.max_batch_tokens)
            best = min(best, time.perf_counter() - start)
        return out, best

    run(64)  # warm-up (allocator, kernels)
    single, t_single = run(1)
    batched, t_batched = run(64)
    n = len(ids)
    print(f"(a) one prompt per forward: {n / t_single:,.1f} prompts/s ({t_single:.2f} s)")
    print(f"(b) token-budget batches:   {n / t_batched:,.1f} prompts/s ({t_batched:.2f} s)")
    print(f"ratio (b)/(a): {t_single / t_batched:.1f}x")
    print(f"max |(b) - (a)|: {np.abs(batched - single).max():.2g}")


if __name__ == "__main__":
    main()
