"""Re-run the engine/store/head mutations of tests/MUTATIONS.md: apply one at a time, run the fast
tests named for it, restore the files, print KILLED or SURVIVED.

    python tests/mutations.py          # all
    python tests/mutations.py A H J    # some, by letter

Run from the repository root with the test environment set (PYTHONPATH=src, ...). It edits source
files in place and restores them afterwards; do not edit those files while it runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS, SCORE = "src/rmvalues/runs/keys.py", "src/rmvalues/engines/score.py"
WORKER = "src/rmvalues/runs/worker.py"
LOADING = "src/rmvalues/models/loading.py"
SEQ_HEAD = "src/rmvalues/models/heads/sequence_classification.py"
SHARD_KEY = "tests/test_shard_key.py"
ENGINE_CAST = (SCORE, "    last = last_hidden.float()\n", "    last = last_hidden\n")
HEAD_CAST = (SEQ_HEAD, "out = last_hidden.to(self.weight.dtype) @ self.weight[0]",
             "out = last_hidden @ self.weight[0]")
KEY_LINE = '{**config, "prompt": prompt_text, **conversation_kwargs(split)}'

# letter: (what, [(file, old, new), ...], test files, -k expression)
MUTATIONS = {
    "A": ("shard key drops paper_compatible",
          [(KEYS, '        "paper_compatible": paper_compatible and PAPER_MODE_VERSION,\n    }', "    }")],
          SHARD_KEY, "paper_compatible"),
    "B": ("shard key drops the provenance", [(KEYS, '        "provenance": rm.provenance(),\n', "")],
          SHARD_KEY, "dtype or revision or weights or head_type or attn"),
    "C": ("provenance drops the weights fingerprint",
          [(LOADING, '        "weights_fingerprint": fingerprint,\n', "")], SHARD_KEY, "weights"),
    "D": ("provenance drops the revision", [(LOADING, '        "revision": revision,\n', "")],
          SHARD_KEY, "revision"),
    "E": ("engine: no float32 cast before the head", [ENGINE_CAST],
          "tests/test_engine_low_precision.py", "fast_equals_reference"),
    "F": ("SequenceClassificationHead.forward: no float32 cast", [HEAD_CAST],
          "tests/test_engine_low_precision.py", "sequence_classification_head"),
    "G": ("E and F together", [ENGINE_CAST, HEAD_CAST], "tests/test_engine_low_precision.py",
          "fast_equals_reference and sequence_classification"),
    "H": ("token candidates lose their suffix ids",
          [(SCORE, "return [[t, *suffix] for t in candidates.token_ids]",
            "return [[t] for t in candidates.token_ids]")],
          "tests/test_engine_conversations.py tests/test_engine_equality.py", "token"),
    "I": ("log-softmax normaliser in fp32",
          [("src/rmvalues/engines/logprobs.py", "torch.log_softmax(logits.double(), dim=-1)",
            "torch.log_softmax(logits, dim=-1)")], "tests/test_logprobs.py", "normaliser"),
    "J": ("prefix cache with sliding-window layers",
          [(SCORE, "        cache = DynamicCache()\n",
            "        cache = DynamicCache(config=rm.backbone.config)\n")],
          "tests/test_engine_low_precision.py",
          "fast_equals_reference and gemma and bfloat16 and sequence_classification"),
    "K": ("--verify builds its input from the fast path's split",
          [(WORKER, ("    from rmvalues.engines.reference import reference_conversations\n\n"
                  "    return reference_conversations(rm.tokenizer, split, candidates)"),
            ("    from rmvalues.engines.score import conversation_ids\n\n"
             "    return conversation_ids(rm, split, candidates)"))],
          "tests/test_engine_conversations.py", "verify"),
    "L": ("shard key drops the prompt text",
          [(KEYS, KEY_LINE, '{**config, **conversation_kwargs(split)}')], SHARD_KEY, "prompt_text"),
    "M": ("shard key drops the candidate hash",
          [(KEYS, '        "candidates": candidates.content_hash(),\n', "")], SHARD_KEY,
          "candidates or candidate_order"),
    "N": ("shard key drops the conversation (template hash, date, prefix/suffix ids)",
          [(KEYS, KEY_LINE, '{**config, "prompt": prompt_text}')], SHARD_KEY,
          "chat_template or date_string"),
}


def run(letter: str) -> str:
    what, edits, tests, expression = MUTATIONS[letter]
    originals: dict[Path, str] = {}
    for path, old, new in edits:
        file = ROOT / path
        text = originals.setdefault(file, file.read_text())
        current = file.read_text()
        if current.count(old) != 1:
            raise SystemExit(f"{letter}: the line to mutate is not in {path} exactly once; update "
                             "tests/mutations.py and tests/MUTATIONS.md")
        file.write_text(current.replace(old, new))
        assert text  # keeps the first (unmutated) text for the restore
    try:
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0",
                               "-q", "-x", "-rf", *tests.split(), "-k", expression],
                              cwd=ROOT, capture_output=True, text=True, check=False)
    finally:
        for file, text in originals.items():
            file.write_text(text)
    failed = [line.removeprefix("FAILED ") for line in proc.stdout.splitlines()
              if line.startswith("FAILED")]
    verdict = {0: "SURVIVED", 1: "KILLED"}.get(proc.returncode, f"ERROR\n{proc.stdout[-2000:]}")
    return f"{letter} {what}: {verdict} {failed[:1]} [{time.time() - start:.0f}s]"


if __name__ == "__main__":
    for letter in sys.argv[1:] or MUTATIONS:
        print(run(letter), flush=True)
