"""rmvalues: measure the values a reward model or language model carries, and trace them to its base.

The package is a pipeline (lexicons → prompts → models/heads → engines → store → analysis →
report, plus training); the CLI is a thin layer over these modules. Heavy libraries (torch,
transformers) are imported only by the stages that need them.
"""

__version__ = "0.1.0"

# The Python API, re-exported lazily so `import rmvalues` stays light (no torch until used).
_LAZY = {
    "score": ("rmvalues.api", "score"),
    "load_lexicon": ("rmvalues.lexicons", "load_lexicon"),
    "load_prompt_set": ("rmvalues.prompts", "load_prompt_set"),
    "analyze": ("rmvalues.analysis", "analyze"),
    "reproduce": ("rmvalues.analysis", "reproduce"),
    "run_logprobs": ("rmvalues.engines.logprobs", "run_logprobs"),
    "implicit_rewards": ("rmvalues.implicit", "implicit_rewards"),
    "write_report": ("rmvalues.report", "write_report"),
    "search_responses": ("rmvalues.runs.search", "search_responses"),
}

__all__ = [  # noqa: RUF022 - the order of _LAZY
    "__version__", "score", "load_lexicon", "load_prompt_set", "analyze", "reproduce",
    "run_logprobs", "implicit_rewards", "write_report", "search_responses",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rmvalues' has no attribute {name!r}")
