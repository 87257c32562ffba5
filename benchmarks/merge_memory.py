"""Planner/merger overhead at the paper's scale, in bounded memory (not a test; takes minutes).

A synthetic result set the size of the paper's RM workload, 10 RMs x 54 prompts x 256,000
candidates = 138,240,000 rows, is written as one engine shard per (model, prompt) unit
(``OUT/shards/<model>/<prompt>-<key>.parquet``, streamed: one shard in memory at a time). Then,
each phase in a fresh child process so its peak RSS is its own:

0. plan: :func:`rmvalues.scale.make_plan` of paper-54 x the full Llama-3 vocabulary (128,256
   candidates) for a tiny random RM on the real tokenizer, as one unit per prompt and as
   4,096-candidate units (keys, token-forward estimate, done/remaining); needs `rmvalues assets fetch`;
1. plan scan: which of the 540 units are done (a stat per unit shard);
2. merge: :func:`rmvalues.runs.table.merge_shards` streams each model's 54 shards into
   ``OUT/<model>.parquet`` (record batches, never a whole table);
3. lexicon join: :func:`rmvalues.analysis.lexicon_join.lexicon_join` over the 10 merged tables (DuckDB,
   memory_limit 2GB) with MFD 2.0 under the paper's normalised matching, then ranks.

Prints rows, seconds and peak RSS per phase, and fails (exit 1) if a phase exceeds the bound.

    python benchmarks/merge_memory.py [--models 10] [--prompts 54] [--candidates 256000]
                                      [--workdir /tmp/rmvalues-merge-bench] [--keep]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import time
from pathlib import Path

BOUND_GB = 4.0
REPO = Path(__file__).resolve().parents[1]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def _vocabulary(n: int, terms: list[str]):
    """``n`` candidate strings: lexicon terms (bare, leading-space, capitalised) spread among
    synthetic tokens, as in a real vocabulary, and their paper-normalised forms."""
    import pyarrow as pa

    from rmvalues.lexicons import paper_normalize

    texts = [f" tok{i}" if i % 3 else f"tok{i}" for i in range(n)]
    variants = [v for t in terms for v in (t, f" {t}", f" {t.capitalize()}")]
    step = max(n // max(len(variants), 1), 1)
    for j, v in enumerate(variants[: n // step]):
        texts[j * step] = v
    normalized = [paper_normalize(t) for t in texts]
    return pa.array(texts, pa.string()), pa.array(normalized, pa.string())


def generate(workdir: Path, models: int, prompts: int, candidates: int) -> list[list[Path]]:
    """Write one shard per (model, prompt); returns the shard paths per model."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rmvalues.lexicons import load_lexicon
    from rmvalues.store.manifest import stable_hash
    from rmvalues.store.schema import SCORE_SCHEMA

    terms = sorted(set(load_lexicon("mfd2").to_frame()["term"]))
    texts, normalized = _vocabulary(candidates, [t for t in terms if "*" not in t])
    token_ids = pa.array(np.arange(candidates, dtype=np.int64))
    kind = pa.array(["token"] * candidates, pa.string())
    rng = np.random.default_rng(0)
    paths: list[list[Path]] = []
    for m in range(models):
        model = f"synthetic-rm-{m}"
        shard_dir = workdir / "shards" / model
        shard_dir.mkdir(parents=True, exist_ok=True)
        paths.append([])
        for p in range(prompts):
            prompt = f"prompt_{p:02d}"
            table = pa.table({
                "model": pa.array([model] * candidates, pa.string()),
                "prompt_id": pa.array([prompt] * candidates, pa.string()),
                "candidate_kind": kind, "token_id": token_ids, "candidate": texts,
                "normalized": normalized,
                "score": pa.array(rng.standard_normal(candidates, dtype=np.float32)),
            }, schema=SCORE_SCHEMA)
            path = shard_dir / f"{prompt}-{stable_hash([model, prompt])}.parquet"
            pq.write_table(table, path)
            paths[-1].append(path)
    return paths


def _tiny_rm(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_labels=1,
        pad_token_id=tok.eos_token_id))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def _phase_plan(workdir, queue):
    from rmvalues.runs import RunSpec, make_plan

    folder = _tiny_rm(Path(workdir) / "tiny-llama3-rm")
    start = time.perf_counter()
    notes = []
    for shard_size in (None, 4096):
        spec = RunSpec.build(str(folder), "paper-54", "vocab", device="cpu", dtype="float32",
                             shard_size=shard_size)
        tick = time.perf_counter()
        plan = make_plan(spec, Path(workdir) / "plan-out")
        est = plan.estimate()
        notes.append(f"{est['units']} units {time.perf_counter() - tick:.1f}s")
    queue.put(("plan (54 x 128,256)", ", ".join(notes) + f", {est['token_forwards']:,} fwd",
               time.perf_counter() - start, _peak_gb()))


def _phase_scan(paths, queue):
    start = time.perf_counter()
    done = sum(1 for group in paths for p in group if Path(p).exists())
    queue.put(("plan scan", f"{done} of {sum(map(len, paths))} units done",
               time.perf_counter() - start, _peak_gb()))


def _phase_merge(workdir, paths, queue):
    import pyarrow.parquet as pq

    from rmvalues.runs.table import merge_shards
    from rmvalues.store.manifest import build_manifest

    start = time.perf_counter()
    rows = 0
    for group in paths:
        model = Path(group[0]).parent.name
        target = merge_shards(group, Path(workdir) / f"{model}.parquet",
                              build_manifest("rm-scores", model=model, units=len(group)))
        rows += pq.ParquetFile(target).metadata.num_rows
    queue.put(("merge", f"{rows:,} rows into {len(paths)} tables", time.perf_counter() - start,
               _peak_gb()))


def _phase_join(workdir, models, queue):
    from rmvalues.analysis.lexicon_join import lexicon_join
    from rmvalues.analysis.ranks import FIG5_POLICY, rank_items
    from rmvalues.lexicons import load_lexicon

    start = time.perf_counter()
    tables = [Path(workdir) / f"synthetic-rm-{m}.parquet" for m in range(models)]
    joined = lexicon_join(tables, load_lexicon("mfd2"), FIG5_POLICY, memory_limit="2GB",
                          temp_directory=Path(workdir) / "duckdb-spill")
    ranked = rank_items(joined, FIG5_POLICY)
    queue.put(("lexicon join + ranks",
               f"{len(ranked):,} matched rows, {ranked['category'].nunique()} categories",
               time.perf_counter() - start, _peak_gb()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=54)
    parser.add_argument("--candidates", type=int, default=256_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rmvalues-merge-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the synthetic files")
    args = parser.parse_args()
    os.environ.setdefault("RMVALUES_LEXICON_DIR", str(REPO.parent / "shared" / "corpora"))
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    total = args.models * args.prompts * args.candidates
    print(f"synthetic result set: {args.models} models x {args.prompts} prompts x "
          f"{args.candidates:,} candidates = {total:,} rows in {args.workdir}")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start = time.perf_counter()
    gen = ctx.Process(target=_generate_child, args=(args, queue))
    gen.start()
    gen.join()
    paths = queue.get()
    size = sum(p.stat().st_size for group in paths for p in group) / 1024**3
    print(f"generate: {sum(map(len, paths))} shards, {size:.2f} GiB on disk, "
          f"{time.perf_counter() - start:.0f}s")
    results = []
    for target, extra in ((_phase_plan, (args.workdir,)), (_phase_scan, (paths,)), (_phase_merge, (args.workdir, paths)),
                          (_phase_join, (args.workdir, args.models))):
        child = ctx.Process(target=target, args=(*extra, queue))
        child.start()
        child.join()
        if child.exitcode != 0:
            print(f"{target.__name__} failed with exit code {child.exitcode}")
            return 1
        results.append(queue.get())
    ok = True
    for name, what, seconds, peak in results:
        within = peak < BOUND_GB
        ok &= within
        print(f"{name:<22} {what:<52} {seconds:8.1f}s  peak RSS {peak:5.2f} GB"
              f"  {'ok' if within else f'OVER {BOUND_GB} GB'}")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    print("all phases within the bound" if ok else "a phase exceeded the memory bound")
    return 0 if ok else 1


def _generate_child(args, queue):
    paths = generate(args.workdir, args.models, args.prompts, args.candidates)
    print(f"generate: peak RSS {_peak_gb():.2f} GB")
    queue.put(paths)


if __name__ == "__main__":
    raise SystemExit(main())
