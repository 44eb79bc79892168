"""promoterlab.sequence: the vectorised layout gives the codes, windows and errors of the string
layout it replaced, on real DREAM and de Boer rows and on edge cases; both encoders call it."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DREAM_TRAIN, SHARED_DATA
from promoterlab.config import DataConfig
from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import DataError, read_table
from promoterlab.data.store_build import build_store
from promoterlab.sequence import (LEFT_ADAPTER, PLASMID_UPSTREAM, RIGHT_ADAPTER, Layout, SequenceError,
                                  common_suffix, complement_codes, concatenated_codes, decode, encode,
                                  insert_windows, lay_out, model_one_hot, reverse_complement,
                                  reverse_complement_codes, tangermeme_one_hot)

DE_BOER_ADAPTER = "AACTGCATTTTTTTCACATC"
DE_BOER_TEST = SHARED_DATA / "deboer2020_native" / "test.tsv.gz"
DREAM_TEST = SHARED_DATA / "dream2022" / "test" / "test_sequences.txt"
_TO_CODES = str.maketrans("ACGTN", "\x00\x01\x02\x03\x04")


# The string implementation that the vectorised one replaced (promoterlab.data.layout.layout,
# promoterlab.data.encoding.encode and promoterlab.data.augment.insert_windows / common_suffix
# before issue 31), kept here as the reference.
def string_layout(seq: str, layout: Layout) -> str:
    seq = seq.upper()
    if layout.left_adapter and seq.startswith(layout.left_adapter):
        seq = seq[len(layout.left_adapter):]
    if len(seq) > layout.seq_len:
        raise ValueError(f"sequence of {len(seq)} bp (adapter stripped) is longer than the model length "
                         f"{layout.seq_len}")
    full = layout.upstream + seq
    if len(full) < layout.seq_len:
        full = "N" * (layout.seq_len - len(full)) + full
    return full[len(full) - layout.seq_len:]


def string_codes(seqs: list[str], layout: Layout) -> np.ndarray:
    laid = "".join(string_layout(s, layout) for s in seqs).upper()
    return np.frombuffer(laid.translate(_TO_CODES).encode(), dtype=np.uint8).reshape(len(seqs), layout.seq_len)


def string_windows(seqs: list[str], layout: Layout, right_flank: str = "") -> torch.Tensor:
    seqs = pd.Series(list(seqs), dtype=str).str.upper()
    adapter, flank = layout.left_adapter.upper(), right_flank.upper()
    length = seqs.str.len().to_numpy(dtype=np.int64)
    if adapter:
        length = length - seqs.str.startswith(adapter).to_numpy(dtype=np.int64) * len(adapter)
    start = np.clip(layout.seq_len - length, 0, None)
    stop = np.full_like(start, layout.seq_len)
    if flank:
        stop = stop - seqs.str.endswith(flank).to_numpy(dtype=np.int64) * len(flank)
    return torch.from_numpy(np.stack([start, np.maximum(stop, start)], axis=1))


def string_common_suffix(seqs: list[str]) -> str:
    return os.path.commonprefix([s.upper()[::-1] for s in seqs])[::-1]


def edge_sequences() -> list[str]:
    """Adapter present, absent, partial or lower case; N; shorter than the flank or the adapter;
    exactly the window; empty."""
    return [LEFT_ADAPTER + "ACGT" * 20 + RIGHT_ADAPTER, "ACGT" * 20 + RIGHT_ADAPTER, LEFT_ADAPTER.lower() + "acgtn" * 4,
            LEFT_ADAPTER, LEFT_ADAPTER[:10], LEFT_ADAPTER[:-1] + "G" + "ACGT", "NNNN" + RIGHT_ADAPTER, "T", "",
            "A" * 150, LEFT_ADAPTER + "C" * 150, "g" * 149, DE_BOER_ADAPTER + "ACGTN" * 20, DE_BOER_ADAPTER,
            "n" * 30 + RIGHT_ADAPTER.lower()]


LAYOUTS = [Layout(), Layout(seq_len=20), Layout(seq_len=300), Layout(left_adapter=""),
           Layout(left_adapter=DE_BOER_ADAPTER), Layout(seq_len=8, upstream=""), Layout(seq_len=160, upstream="acgt")]


def check_against_strings(seqs: list[str], layout: Layout) -> None:
    """The codes, windows and common suffix of the rows that fit, and the error of those that do not."""
    fits = [s for s in seqs if layout.insert_length(s) <= layout.seq_len]
    laid = lay_out(fits, layout)
    np.testing.assert_array_equal(laid.codes, string_codes(fits, layout))
    assert laid.codes.dtype == np.uint8 and laid.codes.shape == (len(fits), layout.seq_len)
    np.testing.assert_array_equal(encode_sequences(fits, layout).numpy(), laid.codes)
    np.testing.assert_array_equal(laid.inserts, [layout.insert_length(s) for s in fits])
    # the string layout kept a lower-case upstream as it was; codes are the same either way
    assert [layout.apply(s) for s in fits[:50]] == [string_layout(s, layout).upper() for s in fits[:50]]
    suffix = common_suffix(fits)
    assert suffix == string_common_suffix(fits)
    for flank in {suffix, "", RIGHT_ADAPTER, "N", "T" + RIGHT_ADAPTER.lower()}:
        assert torch.equal(insert_windows(fits, layout, flank), string_windows(fits, layout, flank)), flank
    for row, seq in enumerate(seqs):
        if layout.insert_length(seq) > layout.seq_len:
            with pytest.raises(ValueError, match=f"sequence of {layout.insert_length(seq)} bp") as old:
                string_layout(seq, layout)
            with pytest.raises(SequenceError, match=f"longer than the model length {layout.seq_len}") as new:
                lay_out(seqs, layout)
            assert new.value.row == row and str(old.value).split()[2] == new.value.problem.split()[2]
            break


@pytest.mark.parametrize("layout", LAYOUTS)
def test_edge_cases_lay_out_as_the_string_layout(layout):
    seqs = edge_sequences()
    rng = np.random.default_rng(3)
    seqs += ["".join(rng.choice(list("ACGTNacgtn"), size=rng.integers(1, 160))) for _ in range(300)]
    seqs += [LEFT_ADAPTER + s for s in seqs[-100:]]
    check_against_strings(seqs, layout)


def test_a_lower_case_adapter_is_never_stripped_and_the_windows_follow():
    layout = Layout(left_adapter=LEFT_ADAPTER.lower())
    seqs = [LEFT_ADAPTER + "ACGT" * 10, LEFT_ADAPTER.lower() + "ACGT" * 10]
    np.testing.assert_array_equal(lay_out(seqs, layout).codes, string_codes(seqs, layout))
    # the string windows stripped an adapter that the layout keeps; the windows now match the layout
    assert insert_windows(seqs, layout).tolist() == [[93, 150], [93, 150]]


@pytest.mark.skipif(not DREAM_TRAIN.exists(), reason="../shared/data not available")
@pytest.mark.parametrize("layout", [Layout(), Layout(seq_len=110), Layout(seq_len=230)])
def test_real_dream_rows_lay_out_as_the_string_layout(layout):
    seqs = read_table(DREAM_TRAIN)["seq"].tolist()
    seqs += [line.split("\t")[0] for line in DREAM_TEST.read_text().splitlines()[:3000]]
    check_against_strings(seqs, layout)


@pytest.mark.skipif(not DE_BOER_TEST.exists(), reason="de Boer 2020 data not available")
@pytest.mark.parametrize("layout", [Layout(left_adapter=DE_BOER_ADAPTER), Layout(), Layout(seq_len=110)])
def test_real_de_boer_rows_lay_out_as_the_string_layout(layout):
    check_against_strings(read_table(DE_BOER_TEST, "seq", "el_combined", drop_missing=True)["seq"].tolist(), layout)


@pytest.mark.skipif(not DREAM_TRAIN.exists(), reason="../shared/data not available")
def test_the_store_builder_writes_the_codes_of_the_string_layout(tmp_path):
    seqs = read_table(DREAM_TRAIN)["seq"].tolist()
    for reader in ("auto", "pandas"):
        store = build_store(DREAM_TRAIN, tmp_path / reader, reader=reader)
        np.testing.assert_array_equal(store.codes, string_codes(seqs, Layout()))
        np.testing.assert_array_equal(store.inserts, [Layout().insert_length(s) for s in seqs])


def test_errors_name_the_row_and_readers_name_the_line():
    seqs = ["ACGT", "ACXT", "A" * 151]
    with pytest.raises(SequenceError, match="sequence 2: characters other than ACGTN") as err:
        lay_out(seqs, Layout())
    assert err.value.row == 1 and err.value.problem == "characters other than ACGTN"
    with pytest.raises(DataError, match=r"^f\.txt:7: characters other than ACGTN$"):
        encode_sequences(seqs, Layout(), "f.txt", np.array([5, 7, 9]))
    with pytest.raises(DataError, match=r"^<sequences>: sequence 2: sequence of 151 bp"):
        encode_sequences([seqs[0], seqs[2]], Layout())
    with pytest.raises(SequenceError, match="sequence 2: 3 bases, not 4"):
        encode(["ACGT", "ACG"])
    with pytest.raises(ValueError, match="layout upstream 'ACGTX'"):
        lay_out(["ACGT"], Layout(seq_len=8, left_adapter="", upstream="ACGTX"))
    assert lay_out(["ACGT" * 2], Layout(seq_len=8, left_adapter="", upstream="X")).codes.tolist() == [[0, 1, 2, 3] * 2]
    assert concatenated_codes(["ac", "", "GTn"])[0].tolist() == [0, 1, 2, 3, 4]
    assert lay_out([], Layout()).codes.shape == (0, 150)


def test_complements_and_one_hots_agree():
    seqs = ["AACGTN", "ggtcan"]
    codes = encode(seqs)
    assert decode(reverse_complement_codes(codes)) == [reverse_complement(s).upper() for s in seqs]
    assert torch.equal(reverse_complement_codes(torch.from_numpy(codes)), torch.from_numpy(
        reverse_complement_codes(codes)).long())
    flipped = complement_codes(torch.from_numpy(codes))
    assert flipped.dtype == torch.uint8 and decode(flipped.numpy()) == ["TTGCAN", "CCAGTN"]
    quarter, zero = model_one_hot(torch.from_numpy(codes)), tangermeme_one_hot(codes)
    assert zero.dtype == torch.int8 and quarter.dtype == torch.float32 and zero.shape == quarter.shape == (2, 4, 6)
    n = torch.from_numpy(codes == 4).unsqueeze(1).expand(-1, 4, -1)
    assert torch.equal(quarter[~n], zero[~n].float()) and (quarter[n] == 0.25).all() and (zero[n] == 0).all()


def test_the_run_config_takes_the_layout_defaults():
    assert DataConfig().layout == Layout()
    assert (Layout().seq_len, Layout().left_adapter, Layout().upstream) == (150, LEFT_ADAPTER, PLASMID_UPSTREAM)
