"""Models: LegNet and its hybrids, each built by name from its typed config
(:mod:`promoterlab.models.registry`)."""

from __future__ import annotations

from promoterlab.models.dilated import DilatedConfig, LegNetDilated
from promoterlab.models.embed import EmbedConfig, LegNetEmbed
from promoterlab.models.legnet import LegNet, LegNetConfig
from promoterlab.models.lstm import LegNetLSTM, LSTMConfig
from promoterlab.models.original import OriginalConfig, OriginalLegNet
from promoterlab.models.registry import build_model, count_parameters, model_config, model_names, register
from promoterlab.models.transformer import LegNetTransformer, TransformerConfig

__all__ = ["DilatedConfig", "EmbedConfig", "LSTMConfig", "LegNet", "LegNetConfig", "LegNetDilated", "LegNetEmbed",
           "LegNetLSTM", "LegNetTransformer", "OriginalConfig", "OriginalLegNet", "TransformerConfig", "build_model",
           "count_parameters", "model_config", "model_names", "register"]
