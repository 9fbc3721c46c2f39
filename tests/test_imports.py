"""The CLI starts fast: neither it nor the API and the pipeline under it import torch until a command needs it."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", ["tellkit.pipeline", "tellkit.api", "tellkit.cli", "tellkit.mix.prepare"])
def test_each_module_imports_first_in_a_fresh_interpreter(first):
    code = f"import {first}, tellkit.api, tellkit.pipeline; import sys; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # and neither drags torch in: the CLI starts fast
