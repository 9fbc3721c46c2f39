"""tellkit.api and tellkit.validate import each other's shared part (tellkit.prepare), not each other."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", ["tellkit.validate", "tellkit.api", "tellkit.cli", "tellkit.prepare"])
def test_each_module_imports_first_in_a_fresh_interpreter(first):
    code = f"import {first}, tellkit.api, tellkit.validate; import sys; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # and neither drags torch in: the CLI starts fast
