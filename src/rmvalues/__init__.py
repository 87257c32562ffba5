"""rmvalues: measure the values a reward model or language model carries, and trace them to its base.

The package is a pipeline (lexicons → prompts → models/heads → engines → store → analysis →
report, plus training); the CLI is a thin layer over these modules. Heavy libraries (torch,
transformers) are imported only by the stages that need them.
"""

__version__ = "0.1.0"

from rmvalues.registry import Registry

# The Python API, re-exported lazily so `import rmvalues` stays light (no torch until used).
_API: Registry = Registry("rmvalues API name")
_API.register("score", "rmvalues.api:score")
_API.register("load_lexicon", "rmvalues.lexicons:load_lexicon")
_API.register("load_prompt_set", "rmvalues.prompts:load_prompt_set")
_API.register("analyze", "rmvalues.analysis:analyze")
_API.register("reproduce", "rmvalues.analysis:reproduce")
_API.register("run_logprobs", "rmvalues.engines.logprobs:run_logprobs")
_API.register("implicit_rewards", "rmvalues.implicit:implicit_rewards")
_API.register("write_report", "rmvalues.report:write_report")
_API.register("search_responses", "rmvalues.runs.search:search_responses")

__all__ = [  # noqa: RUF022 - the order of _API
    "__version__", "score", "load_lexicon", "load_prompt_set", "analyze", "reproduce",
    "run_logprobs", "implicit_rewards", "write_report", "search_responses",
]
__getattr__ = _API.module_getattr("rmvalues")
