"""rmvalues: measure the values a reward model or language model carries, and trace them to its base.

The package is a pipeline (lexicons → prompts → models/heads → engines → store → analysis →
report, plus training); the CLI is a thin layer over these modules. Heavy libraries (torch,
transformers) are imported only by the stages that need them.
"""

__version__ = "0.1.0"
