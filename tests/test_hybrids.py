"""The LegNet hybrids: registry and configs, shapes and gradients for both losses, the rho = 0
equivalence of ``legnet-dilated``, save/load, training on simulated data, and the timing table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.dataset import load_split
from promoterlab.evaluation.metrics import pearson
from promoterlab.evaluation.predict import predict
from promoterlab.models import LegNet, LegNetConfig, build_model, count_parameters, model_config, model_names
from promoterlab.training import timing
from promoterlab.training.timing import models_table, step_time_per_1000
from promoterlab.objective import Objective
from promoterlab.runs import load_run, save_model
from promoterlab.training.train import train

pytestmark = [pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec")]

HYBRIDS = ["legnet-dilated", "legnet-embed", "legnet-lstm", "legnet-transformer"]
# Necks small enough for two busy CPU cores; the hybrid's structure is unchanged.
SMALL = {"legnet-dilated": {}, "legnet-embed": {}, "legnet-lstm": {"hidden": 16},
         "legnet-transformer": {"d_model": 16, "nhead": 2, "dim_feedforward": 32, "num_layers": 1}}
VARIANTS = [(name, {}) for name in HYBRIDS] + [
    ("legnet-lstm", {"bidirectional": True}),
    ("legnet-transformer", {"positional": "learned", "num_layers": 2}),
]
VARIANT_IDS = [name + "".join(f"-{k}" for k in opts) for name, opts in VARIANTS]


def tiny(name: str, **overrides) -> LegNetConfig:
    return model_config(name, width=0.125, **{**SMALL[name], **overrides})


def codes(n: int, seed: int = 0, length: int = 150) -> torch.Tensor:
    return torch.randint(0, 4, (n, length), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def inputs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.one_hot(codes(n, seed).long(), 6).float().transpose(1, 2)


def fit_steps(model: torch.nn.Module, loss: str, steps: int = 2) -> None:
    """A few AdamW steps so that weights and BatchNorm statistics differ from the initialisation."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        optimizer.zero_grad()
        Objective(loss).loss_value(model(inputs(16, step)), torch.rand(16) * 17).backward()
        optimizer.step()


def test_registered_defaults_reach_the_built_networks():
    # The defaults, checked on the networks that are built, not on the config fields alone.
    assert set(HYBRIDS) <= set(model_names())
    models = {name: build_model(model_config(name, width=0.125), 18) for name in HYBRIDS}
    for name, model in models.items():
        assert isinstance(model, LegNet) and type(model) is not LegNet, name
    dilated = models["legnet-dilated"]
    assert [b.branch[1].dilated.dilation[0] for b in dilated.blocks] == [4, 3, 2, 2, 1, 1]
    assert {b.branch[1].rho for b in dilated.blocks} == {0.4}
    assert models["legnet-embed"].stem[-1].proj.weight.shape == (70, 150)
    layers = [m for m in models["legnet-transformer"].modules() if isinstance(m, torch.nn.TransformerEncoderLayer)]
    assert len(layers) == 2
    assert layers[0].dropout.p == 0.3
    [lstm] = [m for m in models["legnet-lstm"].modules() if isinstance(m, torch.nn.LSTM)]
    assert lstm.bidirectional is False


def neck_sizes(cfg: LegNetConfig) -> tuple[int, ...]:
    """``(heads, d_model, feed-forward)`` of a built transformer neck, ``(units,)`` of an LSTM neck."""
    model = build_model(cfg, 18)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.TransformerEncoderLayer)]
    if layers:
        attention = layers[0].self_attn
        assert model.neck.proj.out_features == attention.embed_dim == model.head.bins.in_channels
        return attention.num_heads, attention.embed_dim, layers[0].linear1.out_features
    [lstm] = [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    return (lstm.hidden_size,)


@pytest.mark.parametrize("width,transformer,lstm", [
    (1.0, (4, 64, 256), (128,)),    # the full-width defaults
    (0.5, (2, 32, 128), (64,)),
    (0.25, (1, 16, 64), (32,)),     # the converged seed study's width
    (0.125, (1, 8, 32), (16,)),
])
def test_hybrid_necks_scale_with_width(width, transformer, lstm):
    # nhead = max(1, round(4 w)); d_model = 64 w rounded to a multiple of 2 nhead; feed-forward 4 d_model;
    # LSTM units round(128 w): checked on the built networks.
    assert neck_sizes(model_config("legnet-transformer", width=width)) == transformer
    assert neck_sizes(model_config("legnet-lstm", width=width)) == lstm


def test_explicit_neck_sizes_are_kept_at_any_width(tmp_path):
    assert neck_sizes(model_config("legnet-transformer", width=0.25, d_model=32)) == (1, 32, 128)
    assert neck_sizes(model_config("legnet-transformer", width=0.25, nhead=2, dim_feedforward=40)) == (2, 16, 40)
    assert neck_sizes(model_config("legnet-transformer", width=1.0, nhead=3)) == (3, 66, 264)
    assert neck_sizes(model_config("legnet-lstm", width=0.25, hidden=100)) == (100,)
    # A run saved before the sizes scaled holds them explicitly and still builds the same network.
    old = RunConfig(model=model_config("legnet-transformer", width=0.125, d_model=64, nhead=4, dim_feedforward=256))
    old.save(tmp_path / "config.yaml")
    assert neck_sizes(RunConfig.load(tmp_path / "config.yaml").model) == (4, 64, 256)
    # A saved config leaves the rule's sizes unset, so a new width rescales them.
    saved = RunConfig(model=model_config("legnet-lstm", width=0.25)).to_dict()
    assert saved["model"]["hidden"] is None
    saved["model"]["width"] = 0.5
    assert neck_sizes(RunConfig.from_dict(saved).model) == (64,)


def test_parameter_counts_at_the_seed_study_width():
    # Width 0.25 (the converged seed study): no hybrid has more than 10 % more parameters than LegNet.
    counts = {name: count_parameters(build_model(model_config(name, width=0.25), 18))
              for name in ["legnet", *HYBRIDS]}
    assert counts == {"legnet": 117_950, "legnet-dilated": 125_118, "legnet-embed": 128_648,
                      "legnet-lstm": 124_638, "legnet-transformer": 124_782}
    assert max(counts.values()) < 1.1 * counts["legnet"]


@pytest.mark.parametrize("name,opts", [
    ("legnet-dilated", {"rho": 0.2, "dilations": [1, 1, 2, 2, 3, 4]}),
    ("legnet-embed", {"embed_len": 50}),
    ("legnet-transformer", {"d_model": 32, "positional": "learned"}),
    ("legnet-lstm", {"hidden": 64, "bidirectional": True}),
])
def test_config_round_trips_through_yaml(tmp_path, name, opts):
    run = RunConfig(model=model_config(name, width=0.5, **opts), train=TrainConfig(loss="mse"))
    run.save(tmp_path / "config.yaml")
    assert RunConfig.load(tmp_path / "config.yaml") == run


@pytest.mark.parametrize("name,opts,message", [
    ("legnet-dilated", {"rho": 1.5}, r"rho must lie in \[0, 1\], not 1.5"),
    ("legnet-dilated", {"dilations": [2, 2]}, r"dilations must be 6 positive integers .*\[2, 2\]"),
    ("legnet-dilated", {"dilations": [4, 3, 2, 2, 1, 0]}, "dilations must be 6 positive integers"),
    ("legnet-embed", {"embed_len": 0}, "embed_len must be positive, not 0"),
    ("legnet-transformer", {"positional": "rotary"}, "positional must be one of .*'rotary'"),
    ("legnet-transformer", {"d_model": 30}, r"d_model \(30\) must be even and divisible by nhead \(4\)"),
    ("legnet-transformer", {"width": 0.25, "d_model": 18, "nhead": 4}, r"d_model \(18\) must be even and divisible"),
    ("legnet-transformer", {"nhead": 0}, "nhead must be an integer >= 1 or null, got 0"),
    ("legnet-transformer", {"dim_feedforward": 2.5}, "dim_feedforward must be an integer >= 1 or null"),
    ("legnet-lstm", {"dropout": 1.0}, "0 <= dropout < 1"),
    ("legnet-lstm", {"hidden": 0}, "need hidden >= 1"),
])
def test_invalid_settings_are_refused(name, opts, message):
    with pytest.raises(ValueError, match=message):
        model_config(name, **opts)


@pytest.mark.parametrize("n_outputs", [18, 1], ids=["kl", "mse"])
@pytest.mark.parametrize("name,opts", VARIANTS, ids=VARIANT_IDS)
def test_forward_backward_reaches_every_parameter(name, opts, n_outputs):
    torch.manual_seed(0)
    model = build_model(tiny(name, **opts), n_outputs).train()
    out = model(inputs(8))
    assert out.shape == ((8, 18) if n_outputs == 18 else (8,))
    Objective("kl" if n_outputs == 18 else "mse").loss_value(out, torch.rand(8) * 17).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
        assert param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train"])
def test_dilated_with_rho_zero_equals_legnet(train_mode):
    torch.manual_seed(0)
    legnet = build_model(model_config("legnet", width=0.125), 18)
    fit_steps(legnet, "kl")  # non-trivial weights and running statistics
    dilated = build_model(model_config("legnet-dilated", width=0.125, rho=0.0), 18)
    missing, unexpected = dilated.load_state_dict(legnet.state_dict(), strict=False)
    assert not unexpected
    assert sorted(missing) == sorted(f"blocks.{i}.branch.1.dilated.weight" for i in range(6))
    legnet.train(train_mode)
    dilated.train(train_mode)
    x = inputs(8, seed=5)
    with torch.no_grad():
        assert torch.equal(dilated(x), legnet(x))
        dilated.blocks[0].branch[1].rho = 0.4
        assert not torch.allclose(dilated(x), legnet(x))


def test_dilated_twin_uses_the_configured_dilations():
    model = build_model(model_config("legnet-dilated", width=0.125, dilations=[5, 4, 3, 2, 1, 1]), 1)
    assert [block.branch[1].dilated.dilation[0] for block in model.blocks] == [5, 4, 3, 2, 1, 1]
    assert all(block.branch[1].dilation[0] == 1 for block in model.blocks)


def test_embed_blocks_run_on_the_compressed_length():
    model = build_model(model_config("legnet-embed", width=0.125), 18).eval()
    seen = []
    model.blocks.register_forward_hook(lambda module, args, out: seen.append((args[0].shape, out.shape)))
    with torch.no_grad():
        model(inputs(2))
    assert seen[0][0][-1] == 70 and seen[0][1][-1] == 70  # length is the last dim, planar or not
    weight = model.stem[-1].proj.weight
    assert weight.shape == (70, 150)
    torch.testing.assert_close(weight.sum(dim=1), torch.ones(70))  # starts as average pooling
    with pytest.raises(ValueError, match="length 150"):
        model(inputs(2)[:, :, :140])


@pytest.mark.parametrize("loss", ["kl", "mse"])
@pytest.mark.parametrize("name,opts", VARIANTS, ids=VARIANT_IDS)
def test_save_load_gives_identical_predictions(tmp_path, name, opts, loss):
    torch.manual_seed(1)
    cfg = tiny(name, **opts)
    model = build_model(cfg, 18 if loss == "kl" else 1)
    fit_steps(model, loss)
    run = RunConfig(model=cfg, train=TrainConfig(loss=loss))
    save_model(model, run, tmp_path)
    loaded, loaded_run = load_run(tmp_path / "model.pt")
    assert loaded_run.model == cfg and type(loaded) is type(model)
    test_codes = codes(40, seed=9)
    np.testing.assert_array_equal(predict(loaded, test_codes), predict(model, test_codes))


def run_config(path, name: str, loss: str, epochs: int, train_size: int, val_size: int,
               precision: str = "32") -> RunConfig:
    return RunConfig(
        data=DataConfig(path=str(path), train_size=train_size, val_size=val_size),
        model=tiny(name),
        train=TrainConfig(loss=loss, epochs=epochs, batch_size=32, rc_augment=False, precision=precision,
                          accelerator="cpu", devices="1", ensemble=1),
        seed=0,
    )


@pytest.mark.parametrize("name", HYBRIDS)
def test_learns_simulated_data(sim_library, tmp_path, name):
    # Seed 0 reaches 0.6-0.73 for every hybrid (seeds 1-2: 0.29-0.73 at this tiny budget);
    # an untrained model scores about 0 +- 0.05 on 500 sequences.
    summary = train(run_config(sim_library, name, "mse", epochs=3, train_size=1500, val_size=500), tmp_path)
    assert summary["best_val_pearson"] > 0.4


@pytest.mark.parametrize("name", HYBRIDS)
def test_kl_run_directory_reloads(sim_library, tmp_path, name):
    config = run_config(sim_library, name, "kl", epochs=1, train_size=256, val_size=200)
    summary = train(config, tmp_path)
    model, loaded = load_run(tmp_path)
    assert loaded.model.name == name and loaded.train.loss == "kl"
    _, val_set, *_ = load_split(config.data, config.seed)
    # validation carries the flags; fp32 (the run's precision), BatchNorm folded into the convolutions
    pred = predict(model, val_set.codes, singleton=val_set.singleton, precision="32")
    assert np.ptp(pred) > 0  # the trained model tells sequences apart
    # Folded and training-time layers round differently in fp32; where one epoch left the
    # predictions nearly flat, that rounding moves r by (rounding / spread of the predictions).
    unfolded = predict(model, val_set.codes, singleton=val_set.singleton, precision="32", fold=False)
    rounding = 4 * float(np.abs(pred - unfolded).max() / pred.std())
    assert pearson(pred, val_set.targets.numpy()) == pytest.approx(summary["best_val_pearson"], abs=1e-4 + rounding)


def fake_clock(monkeypatch, tick: float = 0.5) -> list[float]:
    """Replace the timing module's clock by one that advances ``tick`` seconds per reading."""
    readings: list[float] = []

    def perf_counter() -> float:
        readings.append(tick * len(readings))
        return readings[-1]

    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=perf_counter))
    return readings


def test_step_time_is_the_median_step_per_1000_sequences(monkeypatch):
    readings = fake_clock(monkeypatch)
    # Each step reads the clock twice (0.5 s apart): 0.5 s for 4 sequences is 125 s per 1,000.
    assert step_time_per_1000("legnet-embed", 0.125, n_outputs=1, batch_size=4, repeats=3, warmup=1) == 125.0
    assert len(readings) == 2 * (1 + 3)  # one warm-up and three timed steps


def test_timing_table_folds_width_presets(monkeypatch):
    fake_clock(monkeypatch)
    table = models_table(widths=(0.125,), names=["legnet", "legnet-s", "legnet-embed"], batch_size=4, repeats=1)
    assert list(table.columns) == ["model", "params", "step_s_per_1000_w0.125"]
    assert list(table["model"]) == ["legnet", "legnet-embed"]
    assert table["params"].iloc[0] == 1_725_122  # the published LegNet
    assert table["params"].iloc[1] == count_parameters(build_model(model_config("legnet-embed"), 18))
    assert table["step_s_per_1000_w0.125"].tolist() == [125.0, 125.0]
