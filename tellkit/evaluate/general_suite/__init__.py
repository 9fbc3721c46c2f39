"""tellkit's default out-of-distribution general-ability suite: lm-eval task YAMLs and their data.

Built by scripts/build_general_suite.py from text in none of tellkit's general mixes or tasks
(README.md beside this file: sources, sizes, licences, the base model's scores). Shipped as package
data, so an installed tellkit runs it offline.
"""

from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
DEFAULT_TASKS = ("tellkit_wordnet", "tellkit_pydoc")  # eval.general_tasks' default, in report order
