"""The fast paths compute what the plain ones do: block-diagonal grouped convolution, planar
channels-last layers, folded BatchNorm, bf16 inference and streamed prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import needs_native_bf16, tiny_config
from promoterlab import api, load_run, predict, train
from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import read_sequences
from promoterlab.data.simulate import simulate_library
from promoterlab.models import build_model, model_config
from promoterlab.models.fold import fold_batchnorm
from promoterlab.models.grouped_conv import BlockGroupedConv1d
from promoterlab.models.layers import SeqBatchNorm1d, to_planar
from promoterlab.sequence import model_input


@pytest.mark.parametrize("channels, per_group, dilation, block", [
    (64, 2, 1, 32), (128, 2, 3, 16), (48, 2, 1, 32), (24, 4, 2, 8), (10, 2, 1, 32)])
def test_block_grouped_conv_equals_grouped_conv1d(channels, per_group, dilation, block):
    torch.manual_seed(0)
    groups = channels // per_group
    plain = nn.Conv1d(channels, channels, 7, padding="same", groups=groups, dilation=dilation, bias=True)
    fast = BlockGroupedConv1d(channels, channels, 7, padding="same", groups=groups, dilation=dilation, bias=True,
                              block=block)
    fast.load_state_dict(plain.state_dict())
    assert fast.merged > 1 and groups % fast.merged == 0
    x = torch.randn(5, channels, 150)
    torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=1e-5)  # fp32, as trained
    # The same function exactly: in float64 values and gradients agree far below 1e-5 (fp32
    # gradients summed over 750 positions in another order differ by about 3e-5 relative).
    plain, fast, x = plain.double(), fast.double(), x.double().requires_grad_()
    y_plain, y_fast = plain(x), fast(x)
    torch.testing.assert_close(y_fast, y_plain, rtol=0, atol=1e-5)
    upstream = torch.randn_like(y_plain)
    grads_plain = torch.autograd.grad(y_plain, (x, plain.weight, plain.bias), upstream)
    grads_fast = torch.autograd.grad(y_fast, (x, fast.weight, fast.bias), upstream)
    for a, b in zip(grads_fast, grads_plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_block_grouped_conv_falls_back_when_groups_do_not_merge():
    conv = BlockGroupedConv1d(6, 6, 7, padding="same", groups=3, block=32)  # 3 groups of 2: merges 3
    assert conv.merged == 3
    prime = BlockGroupedConv1d(14, 14, 7, padding="same", groups=7, block=4)  # 2 per block, 7 groups
    assert prime.merged == 1
    x = torch.randn(2, 14, 20)
    torch.testing.assert_close(prime(x), nn.functional.conv1d(x, prime.weight, prime.bias, 1, "same", 1, 7))


@pytest.mark.parametrize("kernel, groups, dilation, block", [(7, 32, 1, 32), (7, 32, 3, 32), (1, 1, 1, 1), (7, 1, 1, 1)])
def test_planar_conv_and_batchnorm_equal_their_1d_versions(kernel, groups, dilation, block):
    torch.manual_seed(0)
    plain = nn.Conv1d(64, 64, kernel, padding="same", groups=groups, dilation=dilation, bias=True).double()
    fast = BlockGroupedConv1d(64, 64, kernel, padding="same", groups=groups, dilation=dilation, bias=True,
                              block=block).double()
    fast.load_state_dict(plain.state_dict())
    norm, planar_norm = nn.BatchNorm1d(64).double(), SeqBatchNorm1d(64).double()
    x = torch.randn(5, 64, 150, dtype=torch.float64, requires_grad=True)
    y_plain = norm(plain(x))
    y_planar = planar_norm(fast(to_planar(x)))
    assert y_planar.shape == (5, 64, 1, 150) and y_planar.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_planar.squeeze(2), y_plain, rtol=0, atol=1e-10)
    torch.testing.assert_close(planar_norm.running_mean, norm.running_mean, rtol=0, atol=1e-12)
    upstream = torch.randn_like(y_plain)
    grads_plain = torch.autograd.grad(y_plain, (x, plain.weight, plain.bias), upstream)
    grads_planar = torch.autograd.grad(y_planar.squeeze(2), (x, fast.weight, fast.bias), upstream)
    for a, b in zip(grads_planar, grads_plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["legnet", "legnet-dilated", "legnet-embed", "legnet-lstm", "legnet-transformer"])
def test_planar_models_compute_the_1d_function(name):
    torch.manual_seed(0)
    model = build_model(model_config(name, width=0.125), 18).double()
    x = model_input(torch.randint(0, 4, (8, 150), dtype=torch.uint8), False).double()
    for mode in ("train", "eval"):
        getattr(model, mode)()
        outputs = []
        for planar in (True, False):
            model.planar_on_cpu = planar
            torch.manual_seed(1)  # the same dropout masks
            outputs.append(model(x))
        torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-9)


def trained_in_train_mode(name: str, **opts) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(model_config(name, width=0.125, **opts), 18).train()
    with torch.no_grad():
        for step in range(3):  # non-trivial running statistics and BatchNorm affine maps
            model(model_input(torch.randint(0, 4, (32, 150), dtype=torch.uint8), False))
            for module in model.modules():
                if isinstance(module, nn.BatchNorm1d):
                    module.weight.add_(0.1 * torch.randn_like(module.weight))
                    module.bias.add_(0.1 * torch.randn_like(module.bias))
    return model.eval()


@pytest.mark.parametrize("name", ["legnet", "legnet-dilated", "legnet-embed", "legnet-lstm", "legnet-transformer"])
def test_folded_batchnorm_inference_equals_unfolded(name):
    model = trained_in_train_mode(name)
    folded = fold_batchnorm(model)
    x = model_input(torch.randint(0, 5, (16, 150), dtype=torch.uint8), False)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=0, atol=1e-5)
    remaining = sum(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    total = sum(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    # Every BatchNorm after a plain convolution folds: not the one after each block's dilated mix
    # (its twin would need scaling too), nor the one of the embedding's length map.
    assert remaining == {"legnet-dilated": 6, "legnet-embed": 1}.get(name, 0)
    assert total >= 1 + 6 * 4  # stem + 4 per block
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())  # the original is untouched


def test_predict_batch_size_and_unfolded_model_agree():
    model = trained_in_train_mode("legnet")
    codes = torch.randint(0, 4, (70, 150), dtype=torch.uint8)
    folded = predict(model, codes, batch_size=64, precision="32")
    np.testing.assert_allclose(predict(model, codes, batch_size=1, precision="32"), folded, rtol=0, atol=1e-5)
    np.testing.assert_allclose(predict(model, codes, batch_size=7, precision="32", fold=False), folded,
                               rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(sim_library, tmp_path_factory):
    out = tmp_path_factory.mktemp("speed_run")
    train(tiny_config(sim_library, epochs=1, train_size=300, val_size=100), out)
    return out


@needs_native_bf16
def test_bf16_and_fp32_predictions_agree(tiny_run):
    model, config = load_run(tiny_run)
    codes = encode_sequences(simulate_library(400, seed=8)["seq"], config.data.layout)
    fp32 = predict(model, codes, precision="32")
    bf16 = predict(model, codes, precision="bf16")
    assert not np.array_equal(fp32, bf16)  # bf16 really ran
    # On the 0..17 bin scale (BENCHMARKS.md has the figure for a trained legnet-s on DREAM).
    assert np.abs(fp32 - bf16).max() < 0.05
    assert np.corrcoef(fp32, bf16)[0, 1] > 0.99


def test_streamed_prediction_equals_one_pass(tiny_run, tmp_path):
    seqs = simulate_library(230, seed=4)["seq"].tolist()
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    tsv = tmp_path / "in.tsv"
    pd.DataFrame({"name": [f"t{i}" for i in range(len(seqs))], "sequence": seqs}).to_csv(tsv, sep="\t", index=False)
    model, config = load_run(tiny_run)
    whole = predict(model, seqs, layout=config.data.layout)
    for path, kwargs in ((fasta, {}), (tsv, {"seq_col": "sequence", "id_col": "name"})):
        out = tmp_path / f"{path.stem}{path.suffix}.pred.tsv"
        n = api.write_predictions(tiny_run, path, out, chunk_rows=50, **kwargs)  # 5 chunks
        written = pd.read_csv(out, sep="\t")
        assert n == len(seqs) == len(written)
        assert written["seq"].tolist() == seqs
        assert written["id"].tolist()[:2] == (["s0", "s1"] if path == fasta else ["t0", "t1"])
        np.testing.assert_allclose(written["prediction"].to_numpy(), whole, rtol=0, atol=1e-6)
    chunks = list(api.iter_predictions(tiny_run, fasta, chunk_rows=100))
    assert [len(c) for c in chunks] == [100, 100, 30]
    assert read_sequences(fasta)["seq"].tolist() == seqs


def test_streamed_prediction_with_a_bad_row_leaves_no_output(tiny_run, tmp_path):
    seqs = simulate_library(120, seed=4)["seq"].tolist()
    seqs[110] = seqs[110][:40] + "X" + seqs[110][41:]
    path = tmp_path / "in.txt"
    path.write_text("".join(f"{s}\t0\n" for s in seqs))
    out = tmp_path / "out.tsv"
    with pytest.raises(ValueError, match=r"in.txt:111: sequence has character 'X'"):
        api.write_predictions(tiny_run, path, out, chunk_rows=50)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
