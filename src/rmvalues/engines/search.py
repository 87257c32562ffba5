"""Multi-token response search: the highest- and lowest-scoring k-token responses of a reward model.

Single-token search scores every vocabulary token; real answers are longer. Three searches run on
the prefix-cached :class:`~rmvalues.engines.score.Engine` (heads that cannot use a cached prefix get
whole conversations instead, through the same calls):

``exhaustive2``
    every (first, second) pair with the first token from a restricted set (the top-N and bottom-N
    single tokens of a stored score run) and the second from the allowed vocabulary; the prefix
    cache is extended by each first token once and shared by all its second tokens. Exact on that
    set.
``beam``
    a width-W beam over k tokens: each step scores every allowed next token of every beam on the
    cache of prefix + beam (grown by one token per step with :meth:`Engine.extend`), and keeps the W
    best (partial responses are scored as complete responses, suffix included).
``gcg``
    Greedy Coordinate Gradient (Zou et al. 2023, "Universal and Transferable Adversarial Attacks on
    Aligned Language Models", arXiv 2307.15043, Algorithm 1) with the RM score as the objective: the
    gradient of the objective with respect to one-hot response tokens gives the top-k substitutions
    per position, B single-token swaps are sampled from them and scored as one batch on the engine,
    and the best becomes the next response. Optionally the objective adds a fluency term, the mean
    log-probability of the response under a small LM that shares the tokenizer. nanogcg (0.3.0) was
    checked first: its loss, the cross-entropy of a target string on LM logits, is hard-wired into
    its gradient and candidate-loss methods, so it cannot take an RM score without rewriting them.

Every search maximises ``sign * score`` (``sign`` = -1 to minimise), keeps a resumable state (a JSON
dict, saved by the caller after every step), and stops at its step or time budget. :func:`rescore`
re-scores the reported responses through the reference path, as ids and as text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from rmvalues.engines.score import Engine, PrefixState
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel

Method = Literal["exhaustive2", "beam", "gcg"]
Direction = Literal["max", "min"]
METHODS: tuple[str, ...] = ("exhaustive2", "beam", "gcg")
DIRECTIONS: tuple[str, ...] = ("max", "min")
#: Longest response the searches accept.
MAX_LENGTH = 8
TOKENS_HELP = "vocab | alpha | words, optionally :START-END (e.g. words:0-9999), or a list of ids"

#: Called after every step with the state to save (JSON-able) and the best score so far.
StepCallback = Callable[[dict[str, Any], float], None]


# -- which tokens a response may use ---------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpace:
    """The token ids allowed at the first response position and at later ones."""

    first: tuple[int, ...]
    rest: tuple[int, ...]
    source: str

    def at(self, position: int) -> tuple[int, ...]:
        return self.first if position == 0 else self.rest

    def content_hash(self) -> str:
        from rmvalues.store.manifest import stable_hash

        return stable_hash({"first": self.first, "rest": self.rest})


def _is_word(text: str) -> bool:
    return text.isalpha()


def token_space(tokenizer: PreTrainedTokenizerBase, spec: str | Sequence[int] = "vocab", *,
                include_special: bool = False) -> TokenSpace:
    """The allowed tokens: ``vocab`` (all), ``alpha`` (letters only, with or without a leading
    space), ``words`` (readable text: a letters-only token first, then word-start tokens
    ``" word"``), optionally restricted to an id range (``alpha:0-9999``), or a list of ids.

    Special and added tokens are left out unless ``include_special`` (inside a response they are
    control tokens, and their text does not re-tokenise to them).
    """
    from rmvalues.engines.candidates import resolve_candidates, special_token_ids

    specials = set() if include_special else special_token_ids(tokenizer)
    if not isinstance(spec, str):
        ids = [int(i) for i in spec]
        candidates = resolve_candidates(ids, tokenizer)  # checks the ids are in the vocabulary
        allowed = tuple(i for i in candidates.token_ids if i not in specials)
        if not allowed:
            raise InputError("the token list holds only special tokens; give ordinary token ids")
        return TokenSpace(first=allowed, rest=allowed, source=f"ids[{len(allowed)}]")
    kind, _, id_range = spec.partition(":")
    if kind not in ("vocab", "alpha", "words"):
        raise InputError(f"unknown token set {spec!r}; use {TOKENS_HELP}")
    candidates = resolve_candidates(f"vocab:{id_range}" if id_range else "vocab", tokenizer)
    pairs = [(i, t) for i, t in zip(candidates.token_ids, candidates.texts, strict=True)
             if i not in specials]
    if kind == "vocab":
        first = rest = tuple(i for i, _ in pairs)
    elif kind == "alpha":
        first = rest = tuple(i for i, t in pairs if _is_word(t.removeprefix(" ")))
    else:
        first = tuple(i for i, t in pairs if _is_word(t))
        rest = tuple(i for i, t in pairs if t.startswith(" ") and _is_word(t[1:]))
    if not first or not rest:
        raise InputError(f"token set {spec!r} leaves no allowed token at some position; widen the "
                         f"range or use another set ({TOKENS_HELP})")
    return TokenSpace(first=first, rest=rest, source=spec)


# -- scoring responses on the engine ---------------------------------------------------------------


class ResponseScorer:
    """Scores responses (tuples of token ids) of one prompt on the engine and counts them.

    On the prefix path the prompt prefix is prefilled once; :meth:`next_token_scores` runs on the
    cache of prefix + partial response. On the full path (heads that cannot use a cached prefix)
    whole conversations are scored instead.
    """

    def __init__(self, engine: Engine, split: ChatSplit,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.split = split
        self.suffix = list(split.suffix_ids)
        self.cached = engine.mode == "prefix"
        self.root = engine.prefill(split.prefix_ids) if self.cached else None
        self.on_batch = on_batch
        self.evaluations = 0

    def state(self, response: Sequence[int]) -> PrefixState | None:
        """The cache of prefix + ``response`` (``None`` on the full path)."""
        if not self.cached:
            return None
        return self.engine.extend(self.root, response) if len(response) else self.root

    def next_token_scores(self, response: Sequence[int], state: PrefixState | None,
                          tokens: Sequence[int]) -> np.ndarray:
        """Scores of ``response + (t,)`` for every ``t`` in ``tokens``."""
        self.evaluations += len(tokens)
        if self.cached:
            return self.engine.score_state(state, [[int(t), *self.suffix] for t in tokens],
                                           self.on_batch)
        base = [*self.split.prefix_ids, *response]
        return self.engine.score_conversations([[*base, int(t), *self.suffix] for t in tokens],
                                               self.on_batch)

    def scores(self, responses: Sequence[Sequence[int]]) -> np.ndarray:
        """Scores of whole responses."""
        self.evaluations += len(responses)
        if self.cached:
            return self.engine.score_state(self.root, [[*r, *self.suffix] for r in responses],
                                           self.on_batch)
        prefix = list(self.split.prefix_ids)
        return self.engine.score_conversations([[*prefix, *r, *self.suffix] for r in responses],
                                               self.on_batch)


# -- results ----------------------------------------------------------------------------------------


@dataclass
class Found:
    """One response a search reports: ids, engine score, objective and where it ranks."""

    token_ids: tuple[int, ...]
    score: float
    objective: float
    rank: int = 1
    fluency: float | None = None


@dataclass
class SearchOutcome:
    """What one (prompt, direction) search found, how long it ran, and its best-so-far trace."""

    found: list[Found]
    steps: int
    evaluations: int
    complete: bool
    elapsed: float
    trace: list[dict[str, Any]] = field(default_factory=list)


class Budget:
    """A step and/or wall-clock budget, with time already spent before a resume counted in."""

    def __init__(self, time_budget: float | None, spent: float = 0.0) -> None:
        if time_budget is not None and time_budget <= 0:
            raise InputError(f"the time budget must be positive seconds (got {time_budget})")
        self.limit = time_budget
        self.start = time.perf_counter() - spent

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def exhausted(self) -> bool:
        return self.limit is not None and self.elapsed >= self.limit


def _sign(direction: str) -> float:
    if direction not in DIRECTIONS:
        raise InputError(f"unknown direction {direction!r}; use max or min")
    return 1.0 if direction == "max" else -1.0


def _best_order(objective: np.ndarray, keys: Sequence[Sequence[int]]) -> list[int]:
    """Indices by objective, best first; ties broken by the ids, so results are deterministic."""
    return sorted(range(len(objective)), key=lambda i: (-float(objective[i]), tuple(keys[i])))


def _top(objective: np.ndarray, tokens: Sequence[int], width: int) -> np.ndarray:
    """Indices of the ``width`` best entries (ties by token id), best first."""
    if len(objective) > 4 * width:  # only the candidates that can make the cut are sorted
        cut = np.partition(objective, len(objective) - width)[len(objective) - width]
        pool = np.flatnonzero(objective >= cut)
    else:
        pool = np.arange(len(objective))
    ids = np.asarray(tokens)[pool]
    order = np.lexsort((ids, -objective[pool]))
    return pool[order[:width]]


def _trace_row(step: int, best: float, evaluations: int, elapsed: float, **extra: Any
               ) -> dict[str, Any]:
    return {"step": step, "best_objective": float(best), "evaluations": int(evaluations),
            "elapsed_s": float(elapsed), **extra}


# -- exhaustive search over pairs -------------------------------------------------------------------


def first_token_set(singles: Any, n: int) -> list[int]:
    """The top-``n`` and bottom-``n`` token ids of one prompt's single-token scores.

    ``singles``: a frame with ``token_id`` and ``score`` (one prompt of a stored score run).
    """
    if n < 1:
        raise InputError(f"the first-token set needs n >= 1 (got {n})")
    frame = singles.dropna(subset=["token_id"])
    if frame.empty:
        raise InputError("the stored score run has no token candidates for this prompt; run "
                         "`rmvalues score --candidates vocab` first")
    ordered = frame.sort_values(["score", "token_id"], ascending=[False, True])
    ids = [*ordered["token_id"].head(n), *ordered["token_id"].tail(n)]
    return list(dict.fromkeys(int(i) for i in ids))


def exhaustive2(scorer: ResponseScorer, space: TokenSpace, first: Sequence[int], direction: str,
                *, keep: int = 10, time_budget: float | None = None,
                state: Mapping[str, Any] | None = None,
                on_step: StepCallback | None = None) -> SearchOutcome:
    """Every ``(t1, t2)`` with ``t1`` in ``first`` and ``t2`` allowed at position 2: the ``keep``
    best by ``direction``. Resumes from ``state`` (the next first token, the best so far)."""
    sign = _sign(direction)
    if not first:
        raise InputError("the first-token set is empty")
    state = dict(state or {})
    done = int(state.get("done", 0))
    best = [(tuple(r[0]), float(r[1])) for r in state.get("best", [])]
    trace = list(state.get("trace", []))
    scorer.evaluations = int(state.get("evaluations", scorer.evaluations))
    budget = Budget(time_budget, float(state.get("elapsed", 0.0)))
    rest = space.at(1)
    while done < len(first) and not budget.exhausted():
        t1 = int(first[done])
        scores = scorer.next_token_scores((t1,), scorer.state((t1,)), rest)
        top = _top(sign * scores, rest, keep)
        best += [((t1, int(rest[i])), float(scores[i])) for i in top]
        order = _best_order(np.array([sign * s for _, s in best]), [r for r, _ in best])
        best = [best[i] for i in order[:keep]]
        done += 1
        trace.append(_trace_row(done, sign * best[0][1], scorer.evaluations, budget.elapsed,
                                best_score=best[0][1]))
        if on_step is not None:
            on_step({"done": done, "best": [[list(r), s] for r, s in best], "trace": trace,
                     "evaluations": scorer.evaluations, "elapsed": budget.elapsed}, best[0][1])
    found = [Found(r, s, sign * s, rank) for rank, (r, s) in enumerate(best, 1)]
    return SearchOutcome(found, done, scorer.evaluations, done == len(first), budget.elapsed, trace)


# -- beam search -------------------------------------------------------------------------------------


def beam_search(scorer: ResponseScorer, space: TokenSpace, length: int, direction: str, *,
                width: int = 8, time_budget: float | None = None,
                state: Mapping[str, Any] | None = None,
                on_step: StepCallback | None = None) -> SearchOutcome:
    """Width-``width`` beam over ``length`` tokens; reports the final beam and each length's best.

    Resumes from ``state`` (the beam after the last finished step): beam caches are rebuilt by
    extending the prefix by each beam's tokens.
    """
    sign = _sign(direction)
    if width < 1:
        raise InputError(f"the beam width must be at least 1 (got {width})")
    state = dict(state or {})
    beams = [(tuple(r[0]), float(r[1])) for r in state.get("beams", [[[], float("nan")]])]
    per_length = {int(k): (tuple(v[0]), float(v[1])) for k, v in state.get("per_length", {}).items()}
    trace = list(state.get("trace", []))
    scorer.evaluations = int(state.get("evaluations", scorer.evaluations))
    budget = Budget(time_budget, float(state.get("elapsed", 0.0)))
    step = len(beams[0][0])
    while step < length and not budget.exhausted():
        tokens = space.at(step)
        pool: list[tuple[tuple[int, ...], float]] = []
        for response, _ in beams:
            scores = scorer.next_token_scores(response, scorer.state(response), tokens)
            pool += [((*response, int(tokens[i])), float(scores[i]))
                     for i in _top(sign * scores, tokens, width)]
        order = _best_order(np.array([sign * s for _, s in pool]), [r for r, _ in pool])
        beams = [pool[i] for i in order[:width]]
        step += 1
        per_length[step] = beams[0]
        trace.append(_trace_row(step, sign * beams[0][1], scorer.evaluations, budget.elapsed,
                                best_score=beams[0][1]))
        if on_step is not None:
            on_step({"beams": [[list(r), s] for r, s in beams],
                     "per_length": {k: [list(r), s] for k, (r, s) in per_length.items()},
                     "trace": trace, "evaluations": scorer.evaluations,
                     "elapsed": budget.elapsed}, beams[0][1])
    found = [Found(r, s, sign * s, rank) for rank, (r, s) in enumerate(beams, 1) if r]
    found += [Found(r, s, sign * s, 1) for n, (r, s) in sorted(per_length.items()) if n < step]
    return SearchOutcome(found, step, scorer.evaluations, step == length, budget.elapsed, trace)


# -- Greedy Coordinate Gradient ----------------------------------------------------------------------


@dataclass
class Fluency:
    """A small causal LM sharing the RM's tokenizer; the objective adds ``weight`` x the mean
    log-probability of the response tokens after the RM's conversation prefix."""

    model: PreTrainedModel
    weight: float

    def logprobs(self, prefix: Sequence[int], responses: Sequence[Sequence[int]],
                 batch_size: int = 64) -> np.ndarray:
        """Mean log p(response token | prefix, earlier response tokens) of each response."""
        import torch

        device = next(self.model.parameters()).device
        out = np.empty(len(responses), dtype=np.float64)
        p = len(prefix)
        with torch.inference_mode():
            for start in range(0, len(responses), batch_size):
                chunk = [list(r) for r in responses[start:start + batch_size]]
                ids = torch.tensor([[*prefix, *r] for r in chunk], device=device)
                logits = self.model(input_ids=ids, use_cache=False).logits[:, p - 1:-1].double()
                picked = torch.log_softmax(logits, -1).gather(-1, ids[:, p:, None])[..., 0]
                out[start:start + len(chunk)] = picked.mean(-1).cpu().numpy()
        return out

    def embeds_logprob(self, prefix: Sequence[int], one_hot: torch.Tensor,
                       ids: Sequence[int]) -> torch.Tensor:
        """The same mean log-probability as a differentiable function of one-hot response tokens."""
        import torch

        embedding = self.model.get_input_embeddings()
        weight = embedding.weight
        device = weight.device
        with torch.no_grad():
            before = embedding(torch.tensor(list(prefix), device=device))
        rows = min(weight.shape[0], one_hot.shape[1])  # padded embedding rows never occur
        embeds = torch.cat([before, one_hot[:, :rows].to(weight.dtype) @ weight[:rows]])[None]
        logits = self.model(inputs_embeds=embeds, use_cache=False).logits[0].double()
        p = len(prefix)
        logp = torch.log_softmax(logits[p - 1:-1], -1)
        return logp[torch.arange(len(ids), device=device),
                    torch.tensor(list(ids), device=device)].mean()


def objective_gradient(rm: RewardModel, split: ChatSplit, ids: Sequence[int], sign: float,
                       fluency: Fluency | None = None) -> torch.Tensor:
    """d objective / d one-hot response tokens, ``[len(ids), vocabulary rows]`` (float32).

    One full forward of the conversation from embeddings (the prefix's come from the embedding
    table, the response's are ``one_hot @ embeddings``), the head on its final state.
    """
    import torch

    from rmvalues.models.heads import score_full_sequences

    embedding = rm.backbone.get_input_embeddings()
    weight = embedding.weight
    device = weight.device
    one_hot = torch.zeros(len(ids), weight.shape[0], device=device, dtype=torch.float32)
    one_hot[torch.arange(len(ids)), torch.tensor(list(ids))] = 1.0
    one_hot.requires_grad_(True)
    full = [*split.prefix_ids, *ids, *split.suffix_ids]
    with torch.enable_grad():
        with torch.no_grad():
            before = embedding(torch.tensor(list(split.prefix_ids), device=device))
            after = embedding(torch.tensor(list(split.suffix_ids), device=device))
        embeds = torch.cat([before, one_hot.to(weight.dtype) @ weight, after])[None]
        hidden = rm.backbone(inputs_embeds=embeds, attention_mask=torch.ones(
            1, len(full), dtype=torch.long, device=device), use_cache=False).last_hidden_state
        objective = sign * score_full_sequences(rm.head, hidden.float(), [full])[0]
        if fluency is not None and fluency.weight:
            objective = objective + fluency.weight * fluency.embeds_logprob(
                split.prefix_ids, one_hot, ids).float()
        (grad,) = torch.autograd.grad(objective, one_hot)
    return grad


def _allowed_mask(space: TokenSpace, position: int, rows: int) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    mask[list(space.at(position))] = True
    return mask


def gcg(scorer: ResponseScorer, space: TokenSpace, length: int, direction: str, *,
        steps: int = 100, topk: int = 256, search_width: int = 512, seed: int = 0,
        init: Sequence[int] | None = None, fluency: Fluency | None = None,
        time_budget: float | None = None, state: Mapping[str, Any] | None = None,
        on_step: StepCallback | None = None) -> SearchOutcome:
    """Greedy Coordinate Gradient over a ``length``-token response (Zou et al. 2023, Alg. 1).

    Each step: the objective's gradient w.r.t. the one-hot tokens; per position the ``topk``
    allowed tokens of largest gradient; ``search_width`` candidates, each the current response with
    one uniformly drawn position replaced by a uniformly drawn token of that position's top-k,
    scored as one batch on the engine; the best candidate becomes the current response (as in the
    paper, even when worse). The best-so-far only ever improves. ``init``: the starting response
    (default: tokens drawn from the allowed sets with ``seed``).
    """
    sign = _sign(direction)
    if not 1 <= length <= MAX_LENGTH:
        raise InputError(f"the response length must be 1..{MAX_LENGTH} (got {length})")
    if steps < 0 or topk < 1 or search_width < 1:
        raise InputError("GCG needs steps >= 0, topk >= 1 and search_width >= 1")
    rm, split = scorer.engine.rm, scorer.split
    state = dict(state or {})
    rng = np.random.default_rng(seed)
    if "rng" in state:
        rng.bit_generator.state = state["rng"]
    if "current" in state:
        current = tuple(state["current"])
    elif init is not None:
        current = tuple(int(t) for t in init)
        if len(current) != length:
            raise InputError(f"the initial response has {len(current)} tokens, not {length}")
    else:
        current = tuple(int(rng.choice(space.at(i))) for i in range(length))
    prefix = list(split.prefix_ids)
    scorer.evaluations = int(state.get("evaluations", scorer.evaluations))
    budget = Budget(time_budget, float(state.get("elapsed", 0.0)))

    def evaluate(responses: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores = scorer.scores(responses).astype(np.float64)
        flu = (fluency.logprobs(prefix, responses) if fluency is not None and fluency.weight
               else np.full(len(responses), np.nan))
        objective = sign * scores + (fluency.weight * flu if fluency is not None
                                     and fluency.weight else 0.0)
        return scores, objective, flu

    if "best" in state:
        current_obj = float(state["current_objective"])
        best = state["best"]
        best_ids, best_score, best_obj = tuple(best[0]), float(best[1]), float(best[2])
        best_flu = best[3]
        step = int(state["step"])
        trace = list(state.get("trace", []))
    else:
        s, o, f = evaluate([current])
        current_obj = float(o[0])
        best_ids, best_score, best_obj = current, float(s[0]), current_obj
        best_flu = None if np.isnan(f[0]) else float(f[0])
        step = 0
        trace = [_trace_row(0, best_obj, scorer.evaluations, budget.elapsed,
                            best_score=best_score, current_objective=current_obj)]
    rows = rm.backbone.get_input_embeddings().weight.shape[0]
    masks = [_allowed_mask(space, i, rows) for i in range(length)]
    while step < steps and not budget.exhausted():
        grad = objective_gradient(rm, split, current, sign, fluency).float().cpu().numpy()
        top = []
        for i in range(length):
            g = np.where(masks[i], grad[i], -np.inf)
            k = min(topk, int(masks[i].sum()))
            top.append(np.argpartition(-g, k - 1)[:k])
        candidates: dict[tuple[int, ...], None] = {}
        for _ in range(search_width):
            position = int(rng.integers(length))
            swapped = list(current)
            swapped[position] = int(rng.choice(top[position]))
            if tuple(swapped) != current:
                candidates.setdefault(tuple(swapped), None)
        step += 1
        if candidates:
            pool = list(candidates)
            scores, objective, flu = evaluate(pool)
            i = _best_order(objective, pool)[0]
            current, current_obj = pool[i], float(objective[i])
            if current_obj > best_obj:
                best_ids, best_score, best_obj = current, float(scores[i]), current_obj
                best_flu = None if np.isnan(flu[i]) else float(flu[i])
        trace.append(_trace_row(step, best_obj, scorer.evaluations, budget.elapsed,
                                best_score=best_score, current_objective=current_obj))
        if on_step is not None:
            on_step({"step": step, "current": list(current), "current_objective": current_obj,
                     "best": [list(best_ids), best_score, best_obj, best_flu],
                     "rng": rng.bit_generator.state, "trace": trace,
                     "evaluations": scorer.evaluations, "elapsed": budget.elapsed}, best_score)
    found = [Found(best_ids, best_score, best_obj, 1, best_flu)]
    return SearchOutcome(found, step, scorer.evaluations, step == steps, budget.elapsed, trace)


# -- exactness ----------------------------------------------------------------------------------------


def rescore(rm: RewardModel, split: ChatSplit, responses: Sequence[Sequence[int]]
            ) -> list[dict[str, Any]]:
    """Reference-path scores of each response, as ids and as text, and whether the text round-trips.

    ``reference_score``: the conversation ``prefix + ids + suffix``, one unbatched full forward.
    ``text_score``: the response decoded to text, rendered with the prompt through the chat
    template and re-tokenised (what a user who copies the text gets); NaN when the template
    refuses it. ``retokenizes``: the re-tokenised conversation is exactly the searched ids.
    """
    from rmvalues.engines.reference import reference_score
    from rmvalues.errors import TemplateError
    from rmvalues.models.chat import encode_rendered, render_conversation

    tok = rm.tokenizer
    prefix, suffix = list(split.prefix_ids), list(split.suffix_ids)
    rows = []
    for response in responses:
        conversation = [*prefix, *response, *suffix]
        text = tok.decode(list(response))
        try:
            text_ids = encode_rendered(tok, render_conversation(
                tok, split.prompt, text, template=split.template, date_string=split.date_string))
        except TemplateError:
            text_ids = None
        rows.append({
            "response": text,
            "pieces": [tok.decode([t]) for t in response],
            "reference_score": float(reference_score(rm, [conversation])[0]),
            "text_score": (float(reference_score(rm, [text_ids])[0]) if text_ids
                           else float("nan")),
            "retokenizes": text_ids == conversation,
        })
    return rows
