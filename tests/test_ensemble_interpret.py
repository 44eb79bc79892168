"""An ensemble is interpreted as one model: the mean of its members (issue 31). ISM and variant
effects are linear in the prediction, so the ensemble's equal the mean of its members'; DeepLIFT/SHAP
of the ensemble still adds up to its prediction minus its references' mean prediction."""

from __future__ import annotations

import numpy as np
import torch

from promoterlab.data.dataset import encode_sequences
from promoterlab.evaluation.predict import predict
from promoterlab.interpret.attribution import deeplift_shap, saturation_ism
from promoterlab.interpret.variants import ensemble_variant_effects, variant_effects
from promoterlab.interpret.wrapper import OneHotExpression, deeplift_ready
from promoterlab.models.ensemble import EnsembleModel
from promoterlab.sequence import tangermeme_one_hot
from test_interpret import LAYOUT, dream_like, nontrivial_legnet


def members(loss: str = "kl") -> list[torch.nn.Module]:
    return [nontrivial_legnet(loss, seed=seed) for seed in (1, 2, 3)]


def test_ensemble_ism_is_the_mean_of_the_members_ism():
    models = members()
    X = tangermeme_one_hot(encode_sequences(dream_like(2, seed=5), LAYOUT))
    ensemble = saturation_ism(OneHotExpression(EnsembleModel(models)), X, start=100, end=120)
    each = [saturation_ism(OneHotExpression(model), X, start=100, end=120) for model in models]
    assert max(float(e.deltas.abs().max()) for e in each) > 1e-2  # the members' ISM is not all zero
    torch.testing.assert_close(ensemble.deltas, torch.stack([e.deltas for e in each]).mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(ensemble.prediction, torch.stack([e.prediction for e in each]).mean(0),
                               atol=1e-5, rtol=0)


def test_ensemble_variant_deltas_are_the_mean_member_deltas():
    models = members("mse")
    refs = dream_like(4, seed=8)
    alts = [ref[:60] + ("G" if ref[60] != "G" else "T") + ref[61:] for ref in refs]
    by_member = ensemble_variant_effects(models, refs, alts, LAYOUT, precision="32")
    as_one = variant_effects(EnsembleModel(models), refs, alts, LAYOUT, precision="32")
    np.testing.assert_allclose(as_one["delta"], by_member["delta"], atol=1e-5)
    single = [variant_effects(m, refs, alts, LAYOUT, precision="32")["delta"] for m in models]
    np.testing.assert_allclose(by_member["delta_sd"], np.std(single, axis=0), atol=1e-6)


def test_ensemble_module_predicts_the_mean_of_rc_averaged_members():
    models = members()
    codes = encode_sequences(dream_like(8, seed=2), LAYOUT)
    each = np.mean([predict(m, codes, precision="32") for m in models], axis=0)
    np.testing.assert_allclose(predict(EnsembleModel(models), codes, precision="32"), each, atol=1e-5)


def test_deeplift_shap_of_an_ensemble_sums_to_output_minus_reference_output():
    wrapper = OneHotExpression(deeplift_ready(EnsembleModel(members())))
    X = tangermeme_one_hot(encode_sequences(dream_like(2, seed=4), LAYOUT))
    attributions, references = deeplift_shap(wrapper, X, start=57, end=150, n_shuffles=4, seeds=[0, 1],
                                             return_references=True)
    with torch.no_grad():
        output = wrapper(X.float())[:, 0]
        reference = wrapper(references.reshape(-1, 4, 150).float())[:, 0].reshape(2, 4).mean(dim=1)
    difference = output - reference
    assert difference.abs().max() > 1e-3
    torch.testing.assert_close(attributions.sum(dim=(1, 2)), difference, atol=2e-3 * difference.abs().max(),
                               rtol=0)
