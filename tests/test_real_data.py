"""The real DREAM 2022 training slice goes through reading, layout and a short training run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DREAM_TRAIN, tiny_config
from promoterlab import train
from promoterlab.data.dataset import encode_frame
from promoterlab.data.encoding import decode, is_integer
from promoterlab.data.layout import LEFT_ADAPTER, PLASMID_UPSTREAM
from promoterlab.data.readers import read_table

pytestmark = pytest.mark.skipif(not DREAM_TRAIN.exists(), reason="../shared/data not available")


def test_dream_slice_reads_and_lays_out():
    frame = read_table(DREAM_TRAIN)
    assert len(frame) == 7369
    assert frame["target"].between(0, 17).all()
    assert 0.5 < is_integer(frame["target"].to_numpy()).mean() < 0.65  # ~58 % singletons
    encoded = encode_frame(frame, 150, LEFT_ADAPTER, PLASMID_UPSTREAM)
    assert encoded.codes.shape == (7369, 150)
    lengths = frame["seq"].str.len()
    row = int(np.argmax(lengths.to_numpy() == 110))
    seq = frame["seq"].iloc[row]
    assert seq.startswith(LEFT_ADAPTER)
    assert decode(encoded.codes[row:row + 1].numpy())[0] == PLASMID_UPSTREAM[-57:] + seq[17:]
    assert lengths.min() >= 87 and lengths.max() <= 150 + len(LEFT_ADAPTER)
    assert encoded.singleton.numpy().tolist() == is_integer(frame["target"].to_numpy()).tolist()


def test_short_training_on_real_sequences(tmp_path):
    summary = train(tiny_config(DREAM_TRAIN, epochs=1, train_size=1024, val_size=512), tmp_path)
    assert summary["train_size"] == 1024 and summary["val_size"] == 512
    assert np.isfinite(summary["best_val_pearson"]) and summary["best_val_pearson"] > 0.05
