"""The shared training loop: the cosine schedule (planned steps, last weights kept) and the plateau schedule
(early stopping, best epoch restored), on a least-squares problem whose optimum is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hepsbi.errors import EstimatorError
from hepsbi.estimators.training import TrainingConfig, train


def _problem(n: int = 400, noise: float = 0.1):
    """y = 2x − 1 + noise; the least-squares line is the exact answer of the one-layer model."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, generator=gen)
    y = 2 * x[:, 0] - 1 + noise * torch.randn(n, generator=gen)
    model = nn.Linear(1, 1)

    def loss(batch, training):
        return ((model(batch["x"])[:, 0] - batch["y"]) ** 2).mean(), {}

    return model, loss, {"x": x, "y": y}


def test_cosine_runs_the_planned_steps_decays_the_rate_and_keeps_the_last_weights():
    model, loss, tensors = _problem(n=4000)
    config = TrainingConfig(min_steps=300, batch_size=256, learning_rate=0.05, progress=False)
    history = train(model, loss, tensors, config)
    steps_per_epoch = math.ceil(3200 / 256)
    assert len(history.train_loss) == max(50, math.ceil(300 / steps_per_epoch))  # min_steps not binding here
    assert history.best_epoch == len(history.train_loss) and not history.stopped_early
    rates = history.learning_rate
    assert rates[0] < 0.05 and all(a >= b for a, b in zip(rates, rates[1:])) and rates[-1] == pytest.approx(1e-5, rel=0.05)
    # the last weights are the trained line
    assert model.weight.item() == pytest.approx(2.0, abs=0.1) and model.bias.item() == pytest.approx(-1.0, abs=0.1)


def test_min_steps_lengthens_short_data_sets_and_explicit_epochs_win():
    model, loss, tensors = _problem(n=100)
    history = train(model, loss, tensors, TrainingConfig(min_steps=1000, batch_size=40, progress=False))
    assert len(history.train_loss) == math.ceil(1000 / 2)  # 80 training events: 2 steps per epoch
    model, loss, tensors = _problem(n=100)
    history = train(model, loss, tensors, TrainingConfig(epochs=3, min_steps=1000, progress=False))
    assert len(history.train_loss) == 3


def test_plateau_stops_early_and_restores_the_best_epoch():
    model, loss, tensors = _problem(noise=1.0)
    config = TrainingConfig(schedule="plateau", epochs=400, patience=5, learning_rate=0.05, progress=False)
    history = train(model, loss, tensors, config)
    assert history.stopped_early and len(history.train_loss) < 400
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    assert len(history.train_loss) == best + 5
    # the restored weights reproduce the best validation loss
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:80]
    with torch.no_grad():
        val = loss({k: v[perm] for k, v in tensors.items()}, False)[0].item()
    assert val == pytest.approx(history.val_loss[best - 1], rel=1e-5)


@pytest.mark.parametrize("key, value", [("schedule", "linear"), ("min_steps", -1), ("epochs", 0)])
def test_bad_options_are_named(key, value):
    with pytest.raises(EstimatorError, match=key):
        TrainingConfig(**{key: value})


def test_cosine_restores_the_lowest_validation_epoch_when_the_model_overfits():
    """Pure noise and a wide network: the validation loss ends far above its minimum, so the weights of the
    minimum come back; with a tolerance above that rise the last weights stay."""
    from hepsbi.estimators.networks import MLP

    gen = torch.Generator().manual_seed(1)
    tensors = {"x": torch.rand(50, 1, generator=gen), "y": torch.randn(50, generator=gen)}
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:10]

    def run(tolerance):
        torch.manual_seed(0)
        model = MLP(1, 1, (64, 64))

        def loss(batch, training):
            return ((model(batch["x"])[:, 0] - batch["y"]) ** 2).mean(), {}

        config = TrainingConfig(min_steps=3000, batch_size=40, learning_rate=1e-2, overfit_tolerance=tolerance,
                                progress=False)
        history = train(model, loss, tensors, config)
        with torch.no_grad():
            val = loss({k: v[perm] for k, v in tensors.items()}, False)[0].item()
        return history, val

    history, val = run(0.01)
    rise = history.val_loss[-1] / min(history.val_loss) - 1
    assert rise > 0.01 and history.best_epoch < len(history.train_loss)
    assert val == pytest.approx(min(history.val_loss), rel=1e-5) == history.val_loss[history.best_epoch - 1]
    history, val = run(rise * 2)
    assert history.best_epoch == len(history.train_loss) and val == pytest.approx(history.val_loss[-1], rel=1e-5)


def test_the_history_keeps_each_term_of_the_loss_through_save_and_load(tmp_path):
    """ALICES' loss is a ratio term plus α times a score term: each is recorded per epoch (train and validation),
    their α-weighted sum is the total, and a saved estimator keeps them (plots/training.png draws them)."""
    from hepsbi import RatioEstimator, TrainingData
    from hepsbi.simulators import GaltonBoard

    data = TrainingData.from_simulator(GaltonBoard(), 600, seed=2)
    est = RatioEstimator("alices", alpha=0.5, epochs=3, min_steps=1, progress=False).fit(data)
    h = est.history
    assert set(h.train_parts) == {"ratio", "score"} == set(h.val_parts)
    assert all(len(v) == 3 for v in (*h.train_parts.values(), *h.val_parts.values()))
    for epoch in range(3):
        total = h.val_parts["ratio"][epoch] + 0.5 * h.val_parts["score"][epoch]
        assert total == pytest.approx(h.val_loss[epoch], rel=1e-5)
    loaded = RatioEstimator.load(est.save(tmp_path / "alices"))
    assert loaded.history.train_parts == h.train_parts and loaded.history.val_parts == h.val_parts


def test_a_loss_that_is_not_finite_stops_training_with_advice():
    model, _, tensors = _problem(n=100)

    def exploding(batch, training):
        return (model(batch["x"])[:, 0] * float("inf")).mean(), {}

    with pytest.raises(EstimatorError, match=r"my fit: the loss became (nan|inf) in epoch 1; try a smaller learning_rate"):
        train(model, exploding, tensors, TrainingConfig(epochs=3, progress=False), description="my fit")


def test_the_losses_recorded_are_the_means_over_the_epoch():
    """The per-epoch sums are kept in float64 on the model's device and read once per epoch: they equal the mean of
    the batch losses each step computed (learning rate 0: the same model at every step)."""
    model, loss, tensors = _problem(n=100)
    config = TrainingConfig(epochs=2, batch_size=30, learning_rate=1e-12, min_learning_rate=1e-12, progress=False,
                            validation_fraction=0.0)
    history = train(model, loss, tensors, config)
    with torch.no_grad():
        want = loss(tensors, False)[0].item()
    assert history.train_loss[0] == pytest.approx(want, rel=1e-6)
