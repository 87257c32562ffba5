"""Exhaustive-token-search throughput: the paper's approach vs rmvalues' prefix-cached engine.

One random-init Llama-architecture RM with realistic layer shapes scaled to CPU (hidden 512, 4
layers, 8 query heads on 2 key/value heads, the full 128,256-token Llama-3 vocabulary), the real
Llama-3.1 chat template with its system header, one prompt, the same token candidates:

(a) the paper's approach: decode each token, ``apply_chat_template(tokenize=False)``, re-tokenise
    with default special tokens, right-pad to batches of 64 and run the full conversation;
(b) ours, prefix ids + [token id] + suffix ids, the prefix prefilled once, only response + suffix
    tokens run per candidate: the expanded-cache reference attention at 64 rows (the engine before
    issue 15), and shared-prefix attention batched by token budget (``--budgets``).

Prints candidates/s, the ratio (b)/(a) and the % of the compute bound it reaches, per thread count;
the bound is (prefix + response + suffix tokens) / (response + suffix tokens), the factor by which
caching the prefix cuts the tokens a candidate runs. Then max |shared - expand| over every
candidate and max |ours - id-exact full forward| (the reference path) on a sample.

``--sweep 256,512,...`` times only the shared engine over those token budgets (how the CPU default
``SHARED_BATCH_TOKENS["cpu"]`` in engines/score.py was chosen).

    python benchmarks/ets_throughput.py [--threads 1,2] [--candidates 4096] [--budgets 256,2048]
    python benchmarks/ets_throughput.py --sweep 128,256,512,1024,2048,4096,8192 --candidates 2048
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


def engines(rm, budgets: list[int]):
    """Our engines by label: the reference attention at 64 rows, shared attention per budget."""
    from rmvalues.engines.score import Engine

    out = {"expand, 64 rows": Engine(rm, batch_size=64, attention="expand")}
    for budget in budgets:
        out[f"shared, {budget} tokens"] = Engine(rm, attention="shared", max_batch_tokens=budget)
    return out


def sweep(rm, split, candidates, budgets: list[int], threads: list[int], slice_size: int) -> None:
    """candidates/s of the shared engine per token budget, budgets interleaved slice by slice."""
    scorers = engines(rm, budgets)
    scorers.pop("expand, 64 rows")
    n = len(candidates)
    for count in threads:
        torch.set_num_threads(count)
        for engine in scorers.values():
            engine.score_prompt(split, candidates.subset(range(min(n, 256))))  # warm-up
        seconds = dict.fromkeys(scorers, 0.0)
        for first in range(0, n, slice_size):
            part = candidates.subset(range(first, min(first + slice_size, n)))
            for label, engine in scorers.items():
                seconds[label] += timed(lambda e=engine, p=part: e.score_prompt(split, p))[1]
        print(f"--- sweep, {count} CPU thread(s): " + ", ".join(
            f"{label.split(', ')[1]}: {n / t:,.0f}/s" for label, t in seconds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated torch thread counts to measure (both approaches)")
    parser.add_argument("--candidates", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64, help="paper approach batch size")
    parser.add_argument("--budgets", default="256,2048",
                        help="token budgets of the shared-attention engine (comma-separated)")
    parser.add_argument("--sweep", default=None,
                        help="comma-separated token budgets: time only the shared engine over them")
    parser.add_argument("--check", type=int, default=256, help="candidates checked vs reference")
    parser.add_argument("--slice", type=int, default=1024,
                        help="candidates per timed slice (one prefill each; a budget above 2x this "
                             "is not reached)")
    args = parser.parse_args()

    from rmvalues.engines.candidates import vocabulary_candidates
    from rmvalues.engines.reference import reference_score
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
    threads = [int(t) for t in args.threads.split(",")]
    if args.sweep:
        sweep(rm, split, candidates, [int(b) for b in args.sweep.split(",")], threads, args.slice)
        return
    scorers = engines(rm, [int(b) for b in args.budgets.split(",")])

    prefix, continuation = len(split.prefix_ids), 1 + len(split.suffix_ids)
    bound = (prefix + continuation) / continuation
    n = len(candidates)
    print(f"model: random-init Llama, hidden 512, 4 layers, 8/2 heads, vocab {len(tok):,}; "
          f"Llama-3.1 template; paper batch {args.batch_size}")
    print(f"candidates: {n:,} token ids; prefix {prefix} tokens, response + suffix "
          f"{continuation} tokens per candidate")
    print(f"compute bound (prefix + response + suffix) / (response + suffix) = "
          f"({prefix} + {continuation}) / {continuation} = {bound:.1f}x")
    warm = candidates.subset(range(min(n, 256)))
    for count in threads:
        torch.set_num_threads(count)
        paper_approach(rm, split, warm, args.batch_size)  # warm-up (allocator, kernels)
        for engine in scorers.values():
            engine.score_prompt(split, warm)
        # Everything alternates slice by slice, so load from other processes on a shared machine
        # hits all alike.
        paper_parts, t_paper = [], 0.0
        ours = {label: [] for label in scorers}
        t_ours = dict.fromkeys(scorers, 0.0)
        for first in range(0, n, args.slice):
            part = candidates.subset(range(first, min(first + args.slice, n)))
            scores, seconds = timed(lambda part=part: paper_approach(rm, split, part,
                                                                     args.batch_size))
            paper_parts.append(scores)
            t_paper += seconds
            for label, engine in scorers.items():
                scores, seconds = timed(lambda e=engine, part=part: e.score_prompt(split, part))
                ours[label].append(scores)
                t_ours[label] += seconds
        paper = np.concatenate(paper_parts)
        ours = {label: np.concatenate(parts) for label, parts in ours.items()}
        print(f"--- {count} CPU thread(s)")
        print(f"(a) paper approach (decode -> template -> re-tokenise -> padded full forward): "
              f"{n / t_paper:,.0f} candidates/s ({t_paper:.2f} s)")
        for label, seconds in t_ours.items():
            ratio = t_paper / seconds
            print(f"(b) ours, {label}: {n / seconds:,.0f} candidates/s ({seconds:.2f} s); "
                  f"ratio {ratio:.1f}x = {100 * ratio / bound:.0f}% of the {bound:.1f}x bound")
    expand = ours.pop("expand, 64 rows")
    for label, scores in ours.items():
        print(f"max |{label} - expand, 64 rows| over {n:,} candidates: "
              f"{np.abs(scores - expand).max():.2g}")
    check = rng.choice(n, size=min(args.check, n), replace=False)
    conversations = [split.token_ids(candidates.token_ids[i]) for i in check]
    reference = reference_score(rm, conversations)
    for label, scores in {"expand, 64 rows": expand, **ours}.items():
        print(f"max |{label} - id-exact full forward| over {len(check)} candidates: "
              f"{np.abs(scores[check] - reference).max():.2g}")
    print(f"mean |ours - paper approach| (different inputs: double BOS, lossy round trip): "
          f"{np.abs(expand - paper).mean():.3g}")


if __name__ == "__main__":
    main()
