"""Importing promoterlab has no side effects: it selects no matplotlib backend, installs no
warning filters and imports neither Lightning nor Optuna (each check in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# A non-interactive backend other than Agg: ``matplotlib.use("Agg")`` anywhere would replace it.
ENV = {**os.environ, "MPLBACKEND": "svg"}

PROBE = """
import json, sys, warnings
{prepare}
filters = list(warnings.filters)
{imports}
new_filters = [repr(f) for f in warnings.filters if f not in filters]
import matplotlib
print(json.dumps({{"backend": matplotlib.get_backend(), "new_filters": new_filters,
                  "modules": sorted(m for m in ("lightning", "optuna", "torch", "matplotlib.pyplot")
                                    if m in sys.modules)}}))
"""


def probe(imports: str, prepare: str = "") -> dict:
    """Run the imports in a fresh interpreter; what they changed."""
    code = PROBE.format(prepare=prepare, imports=imports)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def fresh_backend() -> str:
    result = subprocess.run([sys.executable, "-c", "import matplotlib; print(matplotlib.get_backend())"],
                            capture_output=True, text=True, env=ENV, timeout=120, check=True)
    return result.stdout.strip()


def test_import_promoterlab_has_no_side_effects():
    found = probe("import promoterlab\nassert promoterlab.__version__")
    assert found["backend"] == fresh_backend() == "svg"
    assert found["new_filters"] == []
    assert found["modules"] == []  # not Lightning, Optuna, torch or pyplot


def test_public_api_is_imported_on_first_use():
    found = probe("import promoterlab\nfrom promoterlab import predict, train\nassert callable(train)")
    assert "torch" in found["modules"] and "optuna" not in found["modules"]
    with_dir = probe("import promoterlab\nassert {'train', 'predict', 'load_run', 'evaluate'} <= set(dir(promoterlab))")
    assert "torch" not in with_dir["modules"]


def test_plotting_modules_select_no_backend():
    # Libraries install warning filters of their own when imported; they are imported first, so that
    # only filters that promoterlab's code installs are seen.
    found = probe("import promoterlab.evaluation.plots, promoterlab.experiments.figures, "
                  "promoterlab.experiments.report",
                  prepare="import numpy, pandas, scipy.stats, torch, yaml, matplotlib.figure")
    assert found["backend"] == "svg"
    assert "matplotlib.pyplot" not in found["modules"] and "lightning" not in found["modules"]
    assert found["new_filters"] == []


def test_training_code_installs_no_warning_filters():
    # The filters for Lightning's chatter belong to the command line, not to the library.
    found = probe("import promoterlab.api, promoterlab.experiments.sweep",
                  prepare="import numpy, pandas, scipy.stats, torch, yaml, matplotlib.figure, lightning")
    assert found["new_filters"] == []
    assert found["backend"] == "svg" and "optuna" not in found["modules"]
