"""EvoAug on the insert: golden outputs, the paper's definitions, fixed length and flank, settings."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from conftest import DREAM_TRAIN
from promoterlab.data.augment import (EvoAugConfig, evoaug, parse_augment, random_deletion, random_insertion,
                                      random_inversion, random_mutation, random_noise, random_translocation,
                                      sample_augmentations, window_mask)
from promoterlab.sequence import (LEFT_ADAPTER, RIGHT_ADAPTER, Layout, common_suffix, decode, encode, insert_windows,
                                  model_input, reverse_complement)

# A 24 bp window: 8 bp of plasmid, the 12 bp insert ACGTTGCAAGCT, then a fixed 4 bp adapter.
SMALL = Layout(seq_len=24, left_adapter="", upstream="C" * 12)
INSERT = "ACGTTGCAAGCT"
FLANK, ADAPTER = "C" * 8, "GGGG"
ON_CODES = {"mutation": random_mutation, "insertion": random_insertion, "deletion": random_deletion,
            "inversion": random_inversion, "translocation": random_translocation}


def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    seq = INSERT + ADAPTER
    return torch.from_numpy(encode([SMALL.apply(seq)])), insert_windows([seq], SMALL, right_flank=ADAPTER)


def dream_batch(n: int = 32, seed: int = 0) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Random DREAM-like sequences (adapter + N80 + adapter, some shorter) laid out to 150 bp."""
    rng = np.random.default_rng(seed)
    inserts = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(60, 81)))) for _ in range(n)]
    seqs = [LEFT_ADAPTER + s + RIGHT_ADAPTER for s in inserts]
    layout = Layout()
    codes = torch.from_numpy(encode([layout.apply(s) for s in seqs]))
    return seqs, codes, insert_windows(seqs, layout, right_flank=RIGHT_ADAPTER)


@pytest.mark.parametrize(("name", "setting", "expected"), [
    # round(0.3 / 0.75 * 12) = 5 positions redrawn; offsets 4, 5, 6, 10, 11 changed (TGC..CT -> GTT..AC)
    ("mutation", 0.3, "ACGTGTTAAGAC"),
    # k = 2 random bases (GC) inserted before offset 9: ACGTTGCAA|GC|GCT, trimmed 1 bp at each end
    ("insertion", 4, "CGTTGCAAGCGC"),
    # k = 2 bases (CA) deleted at offset 6: ACGTTG + AGCT, refilled 1 bp at the start (C) and end (T)
    ("deletion", 4, "CACGTTGAGCTT"),
    # k = 2 bases (CA) at offset 6 reverse-complemented to TG
    ("inversion", 4, "ACGTTGTGAGCT"),
    # rolled right by 2: the last two bases (CT) move to the front
    ("translocation", 4, "CTACGTTGCAAG"),
])
def test_each_augmentation_golden_output_keeps_the_flanks(name, setting, expected):
    codes, windows = small_batch()
    assert windows.tolist() == [[8, 20]]
    out = ON_CODES[name](codes, windows, setting, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == codes.shape
    assert decode(out.numpy()) == [FLANK + expected + ADAPTER]
    again = ON_CODES[name](codes, windows, setting, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(codes, torch.from_numpy(encode([SMALL.apply(INSERT + ADAPTER)])))  # input untouched


@pytest.mark.parametrize("name", list(ON_CODES))
def test_zero_strength_is_the_identity(name):
    _, codes, windows = dream_batch()
    out = ON_CODES[name](codes, windows, 0, torch.Generator().manual_seed(3))
    assert torch.equal(out, codes)


def _template_matches(template: str, out: str) -> bool:
    """``?`` in the template stands for a random base."""
    return len(template) == len(out) and all(t in ("?", o) for t, o in zip(template, out))


def _explained(name: str, before: str, after: str, most: int) -> bool:
    """Whether ``after`` is ``before`` under some parameters the paper's definition allows."""
    width = len(before)
    if name == "mutation":
        return sum(a != b for a, b in zip(before, after)) <= round(most / 0.75 * width)
    starts = range(max(width - most, 0) + 1)
    if name == "insertion":
        return any(_template_matches((before[:at] + "?" * k + before[at:])[k // 2:k // 2 + width], after)
                   for k in range(most + 1) for at in range(max(width, 1)))
    if name == "deletion":
        return any(_template_matches("?" * (k // 2) + before[:at] + before[at + k:] + "?" * (k - k // 2), after)
                   for k in range(min(most, width) + 1) for at in starts)
    if name == "inversion":
        return any(before[:at] + reverse_complement(before[at:at + k]) + before[at + k:] == after
                   for k in range(min(most, width) + 1) for at in starts)
    return any(before[-s % width:] + before[:-s % width] == after for s in range(-most, most + 1))


@pytest.mark.parametrize("name", list(ON_CODES))
def test_outputs_follow_the_definitions_and_leave_flanks_alone(name):
    seqs, codes, windows = dream_batch(n=24, seed=1)
    setting = 0.05 if name == "mutation" else 20
    changed = 0
    for seed in range(2):
        out = ON_CODES[name](codes, windows, setting, torch.Generator().manual_seed(seed))
        for row, (start, stop) in enumerate(windows.tolist()):
            before, after = decode(codes[row:row + 1].numpy())[0], decode(out[row:row + 1].numpy())[0]
            assert len(after) == 150
            assert after[:start] == before[:start] and after[stop:] == before[stop:]  # plasmid and adapter
            assert after[stop:] == RIGHT_ADAPTER and stop - start == len(seqs[row]) - 30
            assert _explained(name, before[start:stop], after[start:stop], setting), (name, seed, row)
            changed += before != after
    assert changed > 24  # most rows changed


def test_noise_is_gaussian_on_the_bases_inside_the_window_mirrored_for_reverse_rows():
    _, codes, windows = dream_batch(n=4)
    x = model_input(codes, torch.tensor([False, True, False, True]))
    rows, reverse = torch.tensor([True, True, True, False]), torch.tensor([False, True, False, True])
    out = random_noise(x, windows, 0.2, torch.Generator().manual_seed(0), rows=rows, reverse=reverse)
    noise = torch.randn((4, 4, 150), generator=torch.Generator().manual_seed(0)) * 0.2
    mask = torch.zeros(4, 150, dtype=torch.bool)
    for row, (start, stop) in enumerate(windows.tolist()):
        if rows[row]:
            span = slice(150 - stop, 150 - start) if reverse[row] else slice(start, stop)
            mask[row, span] = True
    assert torch.equal(window_mask(windows, 150, reverse) & rows[:, None], mask)
    assert torch.equal(out[:, :4], x[:, :4] + noise * mask[:, None])
    assert torch.equal(out[:, 4:], x[:, 4:])  # is_reverse and is_singleton channels
    assert torch.equal(out[3], x[3]) and not torch.equal(out[1], x[1])
    assert 0.15 < float((out - x)[:, :4][mask[:, None].expand(-1, 4, -1)].std()) < 0.25
    assert torch.equal(random_noise(x, windows, 0.0), x)


def test_evoaug_draws_max_augs_per_sequence_and_is_reproducible():
    config = EvoAugConfig()
    chosen = sample_augmentations(1000, config, torch.Generator().manual_seed(0))
    assert chosen.shape == (1000, 6) and chosen.sum(1).tolist() == [2] * 1000
    assert 0.25 < float(chosen.float().mean(0).min()) and float(chosen.float().mean(0).max()) < 0.42
    soft = sample_augmentations(1000, EvoAugConfig(hard=False, max_augs=3), torch.Generator().manual_seed(0))
    assert set(soft.sum(1).tolist()) == {1, 2, 3}
    only_one = EvoAugConfig(mutation=0, insertion=0, deletion=0, translocation=0, noise=0)
    assert only_one.enabled == ("inversion",)
    assert sample_augmentations(5, only_one).sum(1).tolist() == [1] * 5  # max_augs capped at what is on

    _, codes, windows = dream_batch(n=64)
    out, noise_rows = evoaug(codes, windows, config, torch.Generator().manual_seed(7))
    again, noise_again = evoaug(codes, windows, config, torch.Generator().manual_seed(7))
    assert torch.equal(out, again) and torch.equal(noise_rows, noise_again)
    assert 0 < int(noise_rows.sum()) < 64
    outside = ~window_mask(windows, 150)
    assert torch.equal(out[outside], codes[outside])
    assert int((out != codes).any(1).sum()) > 48
    off = EvoAugConfig(mutation=0, insertion=0, deletion=0, inversion=0, translocation=0, noise=0)
    same, none = evoaug(codes, windows, off, torch.Generator().manual_seed(7))
    assert torch.equal(same, codes) and not none.any()
    noise_only = EvoAugConfig(mutation=0, insertion=0, deletion=0, inversion=0, translocation=0)
    same, every = evoaug(codes, windows, noise_only)
    assert torch.equal(same, codes) and every.all()


def test_insert_windows_follow_the_layout():
    n80 = "ACGT" * 20
    dream, short = LEFT_ADAPTER + n80 + RIGHT_ADAPTER, LEFT_ADAPTER + n80[:60] + RIGHT_ADAPTER
    windows = insert_windows([dream, short, n80], Layout(), right_flank=RIGHT_ADAPTER)
    assert windows.tolist() == [[57, 137], [77, 137], [70, 150]]
    assert insert_windows([dream], Layout()).tolist() == [[57, 150]]
    native_left, native_right = "AACTGCATTTTTTTCACATC", "GGTTACGGCTGTTTCTTAAT"
    native = Layout(left_adapter=native_left)
    assert insert_windows([native_left + n80 + native_right], native, native_right).tolist() == [[50, 130]]
    assert insert_windows([], Layout()).shape == (0, 2)
    rng = np.random.default_rng(0)
    assert common_suffix(["".join(rng.choice(list("ACGT"), 80)) + RIGHT_ADAPTER for _ in range(50)]) == RIGHT_ADAPTER


def test_real_dream_sequences_share_exactly_the_right_adapter():
    if not DREAM_TRAIN.exists():
        pytest.skip("shared data not available")
    seqs = [line.split("\t")[0] for line in DREAM_TRAIN.read_text().splitlines()[:2000]]
    assert common_suffix(seqs) == RIGHT_ADAPTER


def test_parse_augment_defaults_settings_and_round_trip():
    assert parse_augment("evoaug") == EvoAugConfig(0.05, 20, 20, 20, 20, 0.2, 2, True)
    assert parse_augment("none") is None and parse_augment("") is None
    config = parse_augment("evoaug: mutation=0.1, insertion=10,noise=0,max_augs=3,hard=false")
    assert config == EvoAugConfig(mutation=0.1, insertion=10, noise=0.0, max_augs=3, hard=False)
    assert config.enabled == ("insertion", "deletion", "inversion", "translocation", "mutation")
    assert config.to_spec() == "evoaug:mutation=0.1,insertion=10,noise=0.0,max_augs=3,hard=false"
    assert parse_augment(config.to_spec()) == config
    assert EvoAugConfig().to_spec() == "evoaug"


@pytest.mark.parametrize(("spec", "message"), [
    ("evo", "unknown augmentation 'evo'"),
    ("evoaug:", "no settings after 'evoaug:'"),
    ("evoaug:speed=2", "unknown setting 'speed'; settings are mutation, insertion"),
    ("evoaug:mutation", "'mutation' is not KEY=VALUE"),
    ("evoaug:insertion=2.5", "insertion must be a whole number, got '2.5'"),
    ("evoaug:insertion=-1", "insertion must be a whole number of bp >= 0, got -1"),
    ("evoaug:mutation=0.9", "mutation must be between 0 and 0.75, got 0.9"),
    ("evoaug:noise=nan", "noise must be a finite number >= 0"),
    ("evoaug:mutation=0.1,mutation=0.2", "mutation given twice"),
    ("evoaug:hard=maybe", "hard must be true or false, got 'maybe'"),
    ("evoaug:max_augs=0", "max_augs must be a whole number >= 1"),
])
def test_parse_augment_errors(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_augment(spec)
