"""Interpretation: which bases matter, which motifs a model learned, what a mutation does.

Built on tangermeme (saturation mutagenesis, DeepLIFT/SHAP, seqlets, marginalisation), memelite's
Tomtom and logomaker. Modules, one operation each:

- :mod:`~promoterlab.interpret.wrapper`: the 4-channel one-hot view of a model that tangermeme needs
- :mod:`~promoterlab.interpret.attribution`: ISM and DeepLIFT/SHAP of one-hot sequences
- :mod:`~promoterlab.interpret.explain`: attributions of a file's inserts (``promoterlab explain``)
- :mod:`~promoterlab.interpret.variants`: reference/alternative predictions (``promoterlab variants``)
- :mod:`~promoterlab.interpret.motifs`: seqlets clustered into motifs (``promoterlab motifs``)
- :mod:`~promoterlab.interpret.known_motifs`: known yeast motifs as PWMs, with their sources
- :mod:`~promoterlab.interpret.marginalize`: a motif inserted at every position (``promoterlab marginalize``)
- :mod:`~promoterlab.interpret.plots`: logos, heat maps and effect plots

The names below are imported on first use, so that importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OneHotExpression": "wrapper", "deeplift_ready": "wrapper", "insert_span": "wrapper",
    "saturation_ism": "attribution", "ism_attributions": "attribution", "deeplift_shap": "attribution",
    "attribute": "explain", "explain_file": "explain", "Explanation": "explain",
    "variant_effects": "variants", "iter_variant_pairs": "variants", "write_variant_effects": "variants",
    "discover_motifs": "motifs", "compare_with_known": "motifs", "find_motifs": "motifs",
    "KNOWN_MOTIFS": "known_motifs",
    "marginalize_positions": "marginalize", "marginalize_run": "marginalize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
