"""Interpretation (issue 14): the 4-channel wrapper, ISM, DeepLIFT/SHAP, variant effects, motifs,
known motifs and marginalisation, on toy models with known answers and tiny LegNets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.dataset import encode_sequences
from promoterlab.evaluation.predict import predict
from promoterlab.interpret.attribution import deeplift_shap, ism_attributions, saturation_ism
from promoterlab.interpret.known_motifs import KNOWN_MOTIFS, consensus_pwm, consensus_site, known_motif
from promoterlab.interpret.marginalize import marginalize_positions, motif_bases
from promoterlab.interpret.motifs import compare_with_known, discover_motifs
from promoterlab.interpret.variants import variant_effects
from promoterlab.interpret.wrapper import OneHotExpression, deeplift_ready, insert_span
from promoterlab.models import build_model, model_config
from promoterlab.sequence import LEFT_ADAPTER, RIGHT_ADAPTER, Layout, reverse_complement, tangermeme_one_hot
from promoterlab.runs import save_model

LAYOUT = Layout()


class Linear(nn.Module):
    """y = sum(W * x) + b over a (batch, 4, L) one-hot: every ISM delta is a difference of weights."""

    def __init__(self, weight: torch.Tensor, bias: float = 0.5):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x * self.weight).sum(dim=(1, 2)) + self.bias).unsqueeze(1)


class SmallConv(nn.Module):
    """A non-linear toy: conv -> ReLU -> conv -> SiLU -> sum over the length -> linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Conv1d(4, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 4, 3, padding=1), nn.SiLU())
        self.out = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x).sum(dim=2))


def nontrivial_legnet(loss: str = "kl", seed: int = 0) -> nn.Module:
    """A tiny LegNet whose output varies with its input (LegNet's own initialisation makes the head
    almost constant): larger head weights and BatchNorm statistics away from the identity."""
    torch.manual_seed(seed)
    model = build_model(model_config("legnet", width=0.125), 18 if loss == "kl" else 1)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.5)
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_(1.0, 1.0)
    nn.init.normal_(model.head.bins.weight, 0.0, 5.0)
    return model.eval()


def dream_like(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [LEFT_ADAPTER + "".join(rng.choice(list("ACGT"), 80)) + RIGHT_ADAPTER for _ in range(n)]


def saved_run(path, loss: str = "kl"):
    """A run directory holding a tiny untrained LegNet (no training needed for these checks)."""
    config = RunConfig(data=DataConfig(path="unused.txt"), model=model_config("legnet", width=0.125),
                       train=TrainConfig(loss=loss), seed=0)
    path.mkdir(parents=True, exist_ok=True)
    save_model(nontrivial_legnet(loss), config, path)
    return path


# --- the 4-channel wrapper ------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["kl", "mse"])
@pytest.mark.parametrize("rc_average", [True, False])
def test_wrapper_predicts_what_predict_does_on_the_6_channel_input(loss, rc_average):
    model = nontrivial_legnet(loss)
    seqs = dream_like(6)
    seqs[2] = seqs[2][:40] + "NNN" + seqs[2][43:]  # N: a zero column for tangermeme, 0.25 for LegNet
    seqs[3] = seqs[3][17:]  # no adapter: laid out the same
    codes = encode_sequences(seqs, LAYOUT)
    expected = predict(model, codes, rc_average=rc_average, precision="32")
    with torch.no_grad():
        got = OneHotExpression(model, rc_average=rc_average)(tangermeme_one_hot(codes).float())
    assert got.shape == (6, 1) and got.dtype == torch.float32
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-6, atol=2e-5)
    assert np.ptp(expected) > 0.05  # the check is not on a constant model


def test_deeplift_ready_model_computes_the_same_function():
    model = nontrivial_legnet()
    x = tangermeme_one_hot(encode_sequences(dream_like(4), LAYOUT)).float()
    with torch.no_grad():
        torch.testing.assert_close(OneHotExpression(deeplift_ready(model))(x), OneHotExpression(model)(x))


def test_insert_span_is_the_sequence_without_its_adapter():
    assert insert_span(dream_like(1)[0], LAYOUT) == (57, 150)
    assert insert_span("ACGT" * 20, LAYOUT) == (70, 150)
    with pytest.raises(ValueError, match="longer than the model length 150"):
        insert_span("A" * 151, LAYOUT)


# --- ISM ------------------------------------------------------------------------------------------


def test_ism_of_a_linear_model_equals_its_weights():
    weight = torch.tensor([[1.0, 0.0, 2.0, -1.0], [0.0, 3.0, 0.0, 0.5], [-2.0, 0.0, 0.0, 0.0], [0.0, 1.0, -1.0, 4.0]])
    X = tangermeme_one_hot(torch.tensor([[0, 1, 2, 3], [3, 3, 0, 1]]))  # ACGT, TTAC
    result = saturation_ism(Linear(weight), X)
    # Golden: deltas[b, p] = W[b, p] - W[base at p, p].
    np.testing.assert_allclose(result.deltas[0].numpy(), [[0, -3, 2, -5], [-1, 0, 0, -3.5],
                                                          [-3, -3, 0, -4], [-1, -2, -1, 0]])
    np.testing.assert_allclose(result.prediction.numpy(), [1 + 3 + 0 + 4 + 0.5, 0 + 1 + 2 + 0.5 + 0.5])
    # Hypothetical ISM attributions are the weights centred over the bases: the model's weights up to
    # a per-position constant.
    centred = weight - weight.mean(dim=0, keepdim=True)
    for i in range(2):
        torch.testing.assert_close(ism_attributions(result.deltas, X, hypothetical=True)[i], centred)
    # The projected ones are what tangermeme itself returns.
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    torch.testing.assert_close(ism_attributions(result.deltas, X),
                               saturation_mutagenesis(Linear(weight), X, fast=False).float())


def test_ism_of_a_window_span_mutates_only_that_span():
    weight = torch.randn(4, 12, generator=torch.Generator().manual_seed(0))
    X = tangermeme_one_hot(torch.randint(0, 4, (3, 12), generator=torch.Generator().manual_seed(1)))
    full = saturation_ism(Linear(weight), X)
    part = saturation_ism(Linear(weight), X, start=5, end=12)
    assert part.deltas.shape == (3, 4, 7)
    torch.testing.assert_close(part.deltas, full.deltas[:, :, 5:])


# --- DeepLIFT/SHAP --------------------------------------------------------------------------------


def test_deeplift_shap_attributions_sum_to_output_minus_reference_output():
    model = SmallConv().eval()
    X = tangermeme_one_hot(torch.randint(0, 4, (3, 40), generator=torch.Generator().manual_seed(2)))
    attributions, references = deeplift_shap(model, X, start=5, end=35, n_shuffles=6, seeds=[0, 1, 2],
                                             return_references=True)
    assert attributions.shape == (3, 4, 40) and references.shape == (3, 6, 4, 40)
    assert torch.all(attributions[:, :, :5] == 0) and torch.all(attributions[:, :, 35:] == 0)
    assert torch.equal(references[:, :, :, :5], X[:, None, :, :5].expand(-1, 6, -1, -1).to(references.dtype))
    with torch.no_grad():
        output = model(X.float())[:, 0]
        reference = model(references.reshape(-1, 4, 40).float())[:, 0].reshape(3, 6).mean(dim=1)
    torch.testing.assert_close(attributions.sum(dim=(1, 2)), output - reference, atol=1e-5, rtol=1e-4)
    assert (output - reference).abs().max() > 1e-3


def test_deeplift_shap_of_legnet_sums_to_output_minus_reference_output():
    wrapper = OneHotExpression(deeplift_ready(nontrivial_legnet()))
    X = tangermeme_one_hot(encode_sequences(dream_like(2, seed=4), LAYOUT))
    attributions, references = deeplift_shap(wrapper, X, start=57, end=150, n_shuffles=4, seeds=[0, 1],
                                             return_references=True)
    with torch.no_grad():
        output = wrapper(X.float())[:, 0]
        reference = wrapper(references.reshape(-1, 4, 150).float())[:, 0].reshape(2, 4).mean(dim=1)
    difference = output - reference
    assert difference.abs().max() > 1e-3
    assert not any(module.training for module in wrapper.modules())  # left in eval mode, as it came
    torch.testing.assert_close(attributions.sum(dim=(1, 2)), difference, atol=2e-3 * difference.abs().max(),
                               rtol=0)


# --- variant effects ------------------------------------------------------------------------------


def test_variant_deltas_equal_predict_alt_minus_predict_ref():
    model = nontrivial_legnet()
    refs = dream_like(5, seed=1)
    alts = [ref[:30] + ("A" if ref[30] != "A" else "C") + ref[31:] for ref in refs]
    effects = variant_effects(model, refs, alts, LAYOUT, precision="32")
    ref_pred, alt_pred = predict(model, refs, layout=LAYOUT, precision="32"), predict(model, alts, layout=LAYOUT,
                                                                                       precision="32")
    np.testing.assert_allclose(effects["ref_pred"], ref_pred, atol=1e-5)
    np.testing.assert_allclose(effects["alt_pred"], alt_pred, atol=1e-5)
    np.testing.assert_allclose(effects["delta"], alt_pred - ref_pred, atol=1e-5)
    with pytest.raises(ValueError, match="2 reference sequences for 1"):
        variant_effects(model, refs[:2], alts[:1], LAYOUT)


# --- motifs ---------------------------------------------------------------------------------------


def test_motifs_are_found_in_planted_attributions_and_named():
    """Three sites planted with attribution (two activators, one repressor) in 300 random 80-mers,
    on either strand, give three motifs that match the known TATA, Reb1 and Ume6 motifs."""
    rng = np.random.default_rng(0)
    n, length = 300, 80
    X = np.zeros((n, 4, length))
    contributions = rng.normal(0, 0.02, (n, length))
    for i in range(n):
        seq = list(rng.choice(list("ACGT"), length))
        for site, effect in (("TATAAAAG", 1.0), ("TTACCCGG", 0.8), ("TAGCCGCCGA", -0.9)):
            if rng.random() < 0.5:
                start = int(rng.integers(0, length - len(site)))
                site = reverse_complement(site) if rng.random() < 0.5 else site
                seq[start:start + len(site)] = site
                contributions[i, start:start + len(site)] += 4 * effect / len(site)
        X[i, ["ACGT".index(b) for b in seq], np.arange(length)] = 1
    threads = torch.get_num_threads()
    seqlets, motifs = discover_motifs(X, X * contributions[:, None, :])
    assert torch.get_num_threads() == threads  # numba (Tomtom, seqlets) shares OpenMP with torch
    table = compare_with_known(motifs).set_index("motif")
    big = table[table["n_seqlets"] >= 50]
    assert sorted(big["best_match"]) == ["Reb1", "TATA", "Ume6"]
    assert big["match"].all() and (big["similarity"] > 0.8).all()
    assert big.loc[big["best_match"] == "Ume6", "sign"].item() == -1
    assert set(seqlets["sign"]) == {1, -1} and (seqlets["motif"] != "").sum() >= 300


def test_known_motifs_are_pwms_of_their_published_consensus():
    pwm = consensus_pwm("TW")
    np.testing.assert_allclose(pwm.sum(axis=0), 1.0)
    np.testing.assert_allclose(pwm[:, 0], np.array([0.05, 0.05, 0.05, 1.05]) / 1.2)
    np.testing.assert_allclose(pwm[:, 1], np.array([0.55, 0.05, 0.05, 0.55]) / 1.2)
    assert consensus_site("TATAWAWR") == "TATAAAAA" and consensus_site("RTCRYYYNNNACG") == "ATCACCCNNNACG"
    assert {m.name for m in KNOWN_MOTIFS} >= {"TATA", "Reb1", "Abf1", "Rap1", "polyA:T", "Ume6"}
    assert all(m.source and m.pwm.shape == (4, len(m.consensus)) for m in KNOWN_MOTIFS)
    assert known_motif("tata").consensus == "TATAWAWR"
    with pytest.raises(KeyError, match="no known motif 'Gal4'"):
        known_motif("Gal4")
    with pytest.raises(ValueError, match="'X' is not an IUPAC"):
        consensus_pwm("TAX")


# --- marginalisation ------------------------------------------------------------------------------


def test_marginalized_effect_of_a_linear_model_is_the_weight_difference():
    weight = torch.randn(4, 20, generator=torch.Generator().manual_seed(5))
    X = tangermeme_one_hot(torch.randint(0, 4, (7, 20), generator=torch.Generator().manual_seed(6)))
    table = marginalize_positions(Linear(weight), X, "GAN", range(3, 8))
    assert len(table) == 10 and set(table["strand"]) == {"+", "-"}
    for row in table.itertuples(index=False):
        site = "GAN" if row.strand == "+" else "NTC"
        change = torch.zeros(7)
        for j, base in enumerate(site):
            if base != "N":
                change += weight["ACGT".index(base), row.position + j] - (X[:, :, row.position + j].float()
                                                                           * weight[:, row.position + j]).sum(1)
        assert row.mean == pytest.approx(float(change.mean()), abs=1e-5)
        assert row.sd == pytest.approx(float(change.std()), abs=1e-5) and row.n == 7
    with pytest.raises(ValueError, match="do not fit a 3 bp motif"):
        marginalize_positions(Linear(weight), X, "GAN", range(15, 19))
    assert motif_bases("TATA") == "TATAAAAA" and motif_bases("acgtn") == "ACGTN"
    with pytest.raises(ValueError, match="neither a known motif"):
        motif_bases("TATA-box")
