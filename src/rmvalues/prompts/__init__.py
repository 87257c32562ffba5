"""Prompt sets with factor metadata: the paper's 54 prompts, the FAccT 3, or any YAML file.

``load_prompt_set("paper-54")`` gives a :class:`PromptSet` whose prompts carry their factor levels
(adjective, context, style, framing), so analyses can model scores by factor.
"""

from rmvalues.prompts.sets import (
    Prompt,
    PromptSet,
    builtin_prompt_sets,
    load_prompt_set,
    prompt_pairs,
    prompt_set_from_dict,
    read_prompt_set,
)

__all__ = [
    "Prompt",
    "PromptSet",
    "builtin_prompt_sets",
    "load_prompt_set",
    "prompt_pairs",
    "prompt_set_from_dict",
    "read_prompt_set",
]
