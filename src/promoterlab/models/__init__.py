"""The architectures, built by name from their typed configs (:mod:`promoterlab.models.registry`).

Importing the package registers every architecture: LegNet in the registry, each hybrid in its module.
"""

from __future__ import annotations

from promoterlab.models.dilated import DilatedConfig, LegNetDilated
from promoterlab.models.embed import EmbedConfig, LegNetEmbed
from promoterlab.models.legnet import LegNet, LegNetConfig
from promoterlab.models.lstm import LegNetLSTM, LSTMConfig
from promoterlab.models.registry import build_model, count_parameters, model_config, model_names, register
from promoterlab.models.transformer import LegNetTransformer, TransformerConfig

__all__ = ["LegNet", "LegNetConfig", "build_model", "count_parameters", "model_config", "model_names", "register"]
__all__ += ["DilatedConfig", "EmbedConfig", "LSTMConfig", "LegNetDilated", "LegNetEmbed", "LegNetLSTM",
            "LegNetTransformer", "TransformerConfig"]
