"""Golden values for layout, encoding, reverse complement and soft labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from promoterlab.sequence import (LEFT_ADAPTER, PLASMID_UPSTREAM, RIGHT_ADAPTER, Layout, decode, encode, is_integer,
                                  model_input, model_one_hot, reverse_complement, reverse_complement_codes)
from promoterlab.objective import expected_bin, soft_labels

FLANK57 = "AGTGCTAGCAGGAATGATGCAAAAGGTTCCCGATTCGAACTGCATTTTTTTCACATC"
def layout(seq: str, **settings) -> str:
    """One sequence laid out with the default layout, or with ``settings`` changed."""
    return Layout(**settings).apply(seq)


N80 = "TCCATCGTATAAAGTATTTGTTAGCAACTTTGATTGGTCCATAGTGCCGGTAAACTTTGAGTGCCTTGAGCCATTTATAG"
DREAM_SEQ = LEFT_ADAPTER + N80 + RIGHT_ADAPTER


def test_dream_sequence_becomes_57bp_flank_plus_its_last_93bp():
    laid = layout(DREAM_SEQ)
    assert len(DREAM_SEQ) == 110 and len(laid) == 150
    assert laid[:57] == FLANK57
    assert laid[57:] == DREAM_SEQ[17:]
    assert laid == FLANK57 + N80 + RIGHT_ADAPTER


def test_upstream_flank_matches_the_plasmid_file():
    flanks = SHARED_DATA / "dream2022" / "plasmid" / "flanks.txt"
    if not flanks.exists():
        pytest.skip("shared data not available")
    table = dict(line.split("\t") for line in flanks.read_text().splitlines() if line and not line.startswith("#"))
    assert table["PLASMID_UPSTREAM_200BP_OF_N80"] == PLASMID_UPSTREAM
    assert table["FLANK5_57BP_LEGNET150"] == FLANK57 == PLASMID_UPSTREAM[-57:]
    assert table["LEFT_ADAPTER"] == LEFT_ADAPTER and table["RIGHT_ADAPTER"] == RIGHT_ADAPTER


def test_short_and_adapterless_sequences_take_more_flank():
    short = LEFT_ADAPTER + "ACGT" * 15 + RIGHT_ADAPTER  # 90 bp, 73 after stripping
    assert layout(short) == PLASMID_UPSTREAM[-77:] + short[17:]
    native = "ac" * 60  # 120 bp without the adapter: kept whole, upper-cased
    assert layout(native) == PLASMID_UPSTREAM[-30:] + native.upper()
    assert layout("ACGT", seq_len=8, upstream="") == "NNNNACGT"
    with pytest.raises(ValueError, match="longer than the model length 150"):
        layout("A" * 151)


def test_encode_one_hot_golden_values():
    codes = encode(["ACGTN", "nacgt"])
    assert codes.dtype == np.uint8
    assert codes.tolist() == [[0, 1, 2, 3, 4], [4, 0, 1, 2, 3]]
    assert decode(codes) == ["ACGTN", "NACGT"]
    hot = model_one_hot(torch.from_numpy(codes))
    assert hot.shape == (2, 4, 5)
    expected = [[1, 0, 0, 0, .25], [0, 1, 0, 0, .25], [0, 0, 1, 0, .25], [0, 0, 0, 1, .25]]
    assert hot[0].tolist() == expected
    with pytest.raises(ValueError, match="characters other than ACGTN"):
        encode(["ACGX"])


def test_reverse_complement_strings_and_codes_agree():
    assert reverse_complement("AACGTN") == "NACGTT"
    codes = torch.from_numpy(encode(["AACGTN", "GGGTCA"]))
    assert decode(reverse_complement_codes(codes).numpy()) == ["NACGTT", "TGACCC"]
    assert torch.equal(reverse_complement_codes(reverse_complement_codes(codes)), codes.long())


def test_model_input_channels():
    codes = torch.from_numpy(encode(["ACGT", "TTTT"]))
    x = model_input(codes, torch.tensor([False, True]), torch.tensor([True, False]))
    assert x.shape == (2, 6, 4)
    assert x[0, 4].tolist() == [0, 0, 0, 0] and x[1, 4].tolist() == [1, 1, 1, 1]
    assert x[0, 5].tolist() == [1, 1, 1, 1] and x[1, 5].tolist() == [0, 0, 0, 0]
    assert model_input(codes, True)[:, 5].sum() == 0


def test_soft_labels_sum_to_one_and_expectation_matches_target():
    targets = torch.tensor([0.0, 3.0, 5.0, 7.25, 12.5, 16.0, 17.0])
    labels = soft_labels(targets, 18)
    assert labels.shape == (7, 18)
    assert torch.allclose(labels.sum(1), torch.ones(7), atol=1e-6)
    # interior targets: the expected bin is the target
    expectation = labels @ torch.arange(18, dtype=torch.float32)
    assert torch.allclose(expectation[1:6], targets[1:6], atol=5e-3)
    # golden: e = 5 -> Normal(5.5, 0.5); bin 5 = [5, 6) holds Phi(1) - Phi(-1)
    assert labels[2, 5].item() == pytest.approx(0.682689, abs=1e-5)
    assert labels[2, 4].item() == pytest.approx(0.157305, abs=1e-5)
    # outer bins are open-ended: e = 17 puts Phi(1) = 0.841 in bin 17
    assert labels[6, 17].item() == pytest.approx(0.841345, abs=1e-5)


def test_expected_bin_of_one_hot_logits():
    logits = torch.full((2, 18), -1e4)
    logits[0, 3] = 0.0
    logits[1, 10] = 0.0
    assert expected_bin(logits).tolist() == pytest.approx([3.0, 10.0])


def test_singleton_convention():
    assert is_integer(np.array([3.0, 3.5, 0.0, 17.0, 2.0000001])).tolist() == [True, False, True, True, False]


def test_eval_batches_carry_singleton_flags_only_when_given():
    from promoterlab.data.dataset import EvalBatches

    codes = torch.as_tensor(encode(["ACGTN", "AAAAC", "GGGTT"]))
    flags = torch.tensor([True, False, True])
    fwd, rc, target = EvalBatches(codes, singleton=flags)[[0, 1, 2]]
    assert fwd[:, 5, 0].tolist() == [1.0, 0.0, 1.0] and rc[:, 5, -1].tolist() == [1.0, 0.0, 1.0]
    assert fwd[:, 4].sum() == 0 and rc[:, 4].min() == 1 and torch.isnan(target).all()
    fwd, rc, _ = EvalBatches(codes)[[0, 1, 2]]
    assert fwd[:, 5].sum() == 0 and rc[:, 5].sum() == 0
