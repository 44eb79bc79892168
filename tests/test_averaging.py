"""EMA and SWA callbacks: hand-computed averages, what is validated, checkpointed and kept at the end."""

from __future__ import annotations

import copy
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

from promoterlab.data.dataset import EvalBatches, TrainBatches, batch_loader
from promoterlab.data.encoded import EncodedSet
from promoterlab.evaluation.metrics import pearson
from promoterlab.evaluation.predict import predict
from promoterlab.models import build_model, model_config
from promoterlab.training.averaging import EMA, SWA, parse_averaging
from promoterlab.training.module import PromoterRegressor
from promoterlab.objective import Objective

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)


class Toy(L.LightningModule):
    """Linear -> BatchNorm -> Linear in float64, plain SGD: every number is easy to recompute."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def toy_loader(batches: int = 1) -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8 * batches, 3, generator=generator, dtype=torch.float64)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


class Recorder(Callback):
    """Raw weights after every optimiser step, and the weights that validation runs on."""

    def __init__(self) -> None:
        self.steps, self.validated = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append(copy.deepcopy(pl_module.state_dict()))

    def on_validation_epoch_start(self, trainer, pl_module):
        self.validated.append(copy.deepcopy(pl_module.state_dict()))


def floating(state: dict) -> dict:
    return {k: v for k, v in state.items() if v.is_floating_point()}


def test_ema_after_one_step_is_the_hand_computed_average():
    module, recorder, ema = Toy(), Recorder(), EMA(decay=0.9)
    initial = copy.deepcopy(module.state_dict())
    trainer = L.Trainer(max_steps=1, callbacks=[ema, recorder], enable_checkpointing=False, **QUIET)
    trainer.fit(module, toy_loader(), toy_loader())
    [stepped] = recorder.steps
    final = module.state_dict()
    for name, value in floating(initial).items():  # weights, biases and BatchNorm running statistics
        assert not torch.equal(stepped[name], value), name
        torch.testing.assert_close(final[name], 0.9 * value + 0.1 * stepped[name], rtol=0, atol=1e-14)
    assert ema.updates == 2  # the initial weights, then one step


def test_swa_averages_the_steps_of_the_last_epochs_and_recomputes_batchnorm():
    module, swa = Toy(), SWA(epochs=2)
    recorder = Recorder()
    trainer = L.Trainer(max_epochs=3, callbacks=[swa, recorder], enable_checkpointing=False,
                        num_sanity_val_steps=0, **QUIET)
    trainer.fit(module, toy_loader(batches=3), toy_loader())
    assert len(recorder.steps) == 9 and swa.updates == 6  # steps of epochs 2 and 3
    # Epoch 1 is validated on its own weights (SWA has not begun), epoch 3 on the average so far.
    assert torch.equal(recorder.validated[0]["net.0.weight"], recorder.steps[2]["net.0.weight"])
    expected = {name: torch.stack([step[name] for step in recorder.steps[3:]]).mean(0)
                for name, value in module.named_parameters()}
    for name, value in expected.items():
        torch.testing.assert_close(module.state_dict()[name], value, rtol=0, atol=1e-12)
    torch.testing.assert_close(recorder.validated[2]["net.0.weight"], expected["net.0.weight"], rtol=0, atol=1e-12)
    reference = copy.deepcopy(module)
    update_bn(toy_loader(batches=3), reference)
    for buffer in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(module.net[1], buffer), getattr(reference.net[1], buffer))
    averaged_statistics = swa._average_model.module.net[1].running_var  # averaged, used for validation
    assert not torch.allclose(module.net[1].running_var, averaged_statistics)


def test_swa_that_never_starts_leaves_the_model_alone():
    module, recorder = Toy(), Recorder()
    trainer = L.Trainer(max_epochs=2, max_steps=1, callbacks=[SWA(epochs=1), recorder], enable_checkpointing=False,
                        **QUIET)
    trainer.fit(module, toy_loader(), toy_loader())
    assert torch.equal(module.state_dict()["net.0.weight"], recorder.steps[-1]["net.0.weight"])


def test_training_with_ema_validates_checkpoints_and_keeps_the_averaged_model(tmp_path):
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 4, (192, 40), generator=generator, dtype=torch.uint8)
    targets = (codes == 2).float().sum(1) / 3
    train, val = EncodedSet(codes[:128], targets[:128], torch.zeros(128, dtype=torch.bool)), codes[128:]
    config = model_config("legnet", width=0.125, seq_len=40)
    objective = Objective("mse")
    torch.manual_seed(0)
    model = build_model(config, objective.n_outputs)
    module = PromoterRegressor(model, objective, _train_cfg())
    ema, recorder = EMA(decay=0.8), Recorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val_pearson", mode="max", save_last=True,
                                 save_on_train_epoch_end=True)  # as training/run.py saves them
    trainer = L.Trainer(max_epochs=2, callbacks=[ema, recorder, checkpoint], num_sanity_val_steps=0,
                        deterministic=True, **QUIET)
    trainer.fit(module, batch_loader(TrainBatches(train), 32, shuffle=True),
                batch_loader(EvalBatches(val, targets[128:]), 64, shuffle=False))
    averaged = ema._average_model.module.state_dict()
    final = module.state_dict()
    assert all(torch.equal(final[name], averaged[name]) for name in floating(final))
    raw = recorder.steps[-1]
    assert not torch.equal(final["model.stem.0.weight"], raw["model.stem.0.weight"])
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert torch.equal(saved["state_dict"]["model.stem.0.weight"], final["model.stem.0.weight"])
    assert torch.equal(saved["current_model_state"]["model.stem.0.weight"], raw["model.stem.0.weight"])
    # The last epoch's validation Pearson is that of the averaged weights.
    pred = predict(model, val, precision="32", fold=False)
    assert module.history[-1]["val_pearson"] == pytest.approx(pearson(pred, targets[128:].numpy()), abs=1e-5)


@pytest.mark.parametrize("make", [lambda: EMA(decay=0.7), lambda: SWA(epochs=2)], ids=["ema", "swa"])
def test_a_resumed_run_ends_with_the_same_average(tmp_path, make):
    class Interrupt(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise KeyboardInterrupt  # as Ctrl-C: Lightning stops without on_train_end

    def fit(callbacks: list, resume: bool) -> Toy:
        module = Toy()
        checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_on_train_epoch_end=True)
        trainer = L.Trainer(max_epochs=3, callbacks=[make(), *callbacks, checkpoint], num_sanity_val_steps=0, **QUIET)
        try:
            trainer.fit(module, toy_loader(batches=2), toy_loader(),
                        ckpt_path=tmp_path / "last.ckpt" if resume else None)
        except SystemExit:
            assert trainer.interrupted
        return module

    whole = fit([], resume=False).state_dict()
    (tmp_path / "last.ckpt").unlink()
    fit([Interrupt()], resume=False)  # stopped after epoch 2 of 3 (SWA has begun), then resumed
    assert "averaging_state" in torch.load(tmp_path / "last.ckpt", weights_only=False)
    resumed = fit([], resume=True).state_dict()
    for name, value in floating(whole).items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-12)


def _train_cfg():
    from promoterlab.config import TrainConfig

    return TrainConfig(loss="mse", epochs=2, batch_size=32, max_lr=0.01, accelerator="cpu", devices="1",
                       ensemble=1)


def test_parse_averaging():
    assert parse_averaging("none") is None and parse_averaging("") is None
    assert isinstance(parse_averaging("ema"), EMA) and parse_averaging("ema").decay == 0.999
    assert parse_averaging("EMA:0.99").decay == 0.99
    assert parse_averaging("swa").epochs == 5 and parse_averaging("swa:3").epochs == 3
    for spec, message in [("polyak", "unknown weight averaging 'polyak'"), ("ema:", "no value after 'ema:'"),
                          ("ema:1", "ema decay must be in [0, 1), got 1.0"), ("ema:x", "ema takes a number"),
                          ("swa:0", "swa epochs must be a whole number >= 1, got 0"),
                          ("swa:2.5", "swa takes a whole number of epochs >= 1, got '2.5'")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_averaging(spec)
