"""Every loss on hand-computed values, including negative weights."""

import math

import pytest
import torch

from hepsbi.estimators import losses

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_carl_hand_values():
    f, y = t(0.0, LN3), t(1.0, 0.0)
    # -log σ(0) = ln 2 ; -log σ(-ln 3) = ln 4
    assert losses.carl(f, y, t(1.0, 1.0)).item() == pytest.approx((LN2 + LN4) / 2)
    # a negative weight subtracts its event: (3 ln 2 - ln 4) / 2 = ln 2 / 2
    assert losses.carl(f, y, t(3.0, -1.0)).item() == pytest.approx(LN2 / 2)


def test_rolr_hand_values():
    f, y, log_r = t(0.0, LN2), t(1.0, 0.0), t(LN2, LN4)
    # y=1: (e^0 - e^-ln2)^2 = 0.25 ; y=0: (e^ln2 - e^ln4)^2 = 4
    assert losses.rolr(f, y, log_r, t(1.0, 1.0)).item() == pytest.approx(2.125)
    assert losses.rolr(f, y, log_r, t(2.0, -0.5)).item() == pytest.approx((0.5 - 2.0) / 2)


def test_rolr_clips_extreme_targets():
    value = losses.rolr(t(0.0), t(0.0), t(50.0), t(1.0)).item()
    assert value == pytest.approx((1 - math.exp(losses.LOG_R_CLIP)) ** 2)


def test_alice_hand_values():
    # s = σ(ln 3) = 3/4 against ŝ = 1/2: cross-entropy ln 2
    assert losses.alice(t(0.0), t(LN3), t(1.0)).item() == pytest.approx(LN2)
    # s = 1/2 against ŝ = σ(ln 3) = 3/4: -(log 0.75 + log 0.25)/2
    expected = -(math.log(0.75) + math.log(0.25)) / 2
    assert losses.alice(t(LN3), t(0.0), t(-2.0)).item() == pytest.approx(-2 * expected)


def test_score_terms_hand_values():
    t_hat = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t_xz = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert losses.score_mse(t_hat, t_xz, torch.tensor([1.0, 0.0]), torch.ones(2)).item() == pytest.approx(2.5)
    assert losses.score_mse(t_hat, t_xz, torch.tensor([1.0, 1.0]), torch.ones(2)).item() == pytest.approx(15.0)
    assert losses.sally(torch.tensor([[1.0], [2.0]]), torch.zeros(2, 1), torch.tensor([1.0, -1.0])).item() == pytest.approx(-1.5)


@pytest.mark.parametrize("method", sorted(losses.RATIO_LOSSES))
def test_ratio_loss_is_ratio_term_plus_alpha_score(method):
    f, y, log_r, w = t(0.2, -0.4), t(1.0, 0.0), t(0.5, -0.1), t(1.0, 2.0)
    t_hat, t_xz = torch.tensor([[1.0], [5.0]], dtype=torch.float64), torch.tensor([[0.0], [0.0]], dtype=torch.float64)
    total, parts = losses.ratio_loss(method, f, t_hat, y, log_r, t_xz, w, alpha=3.0)
    ratio_part = losses.RATIO_LOSSES[method].ratio_term(f, y, log_r, w, losses.LOG_R_CLIP)
    if losses.RATIO_LOSSES[method].uses_score:
        # only the y=1 event enters the score term: w=1, squared error 1 → mean 0.5
        assert total.item() == pytest.approx(ratio_part.item() + 3.0 * 0.5)
        assert parts["score"].item() == pytest.approx(0.5)
    else:
        assert total.item() == pytest.approx(ratio_part.item())


def test_minimiser_of_alice_is_the_log_ratio():
    """For fixed x, minimising ALICE over a constant f gives f = log E[s]/(1 - E[s]) with s = σ(log r_xz)."""
    log_r = t(-1.0, 0.5, 2.0)
    f = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([f], max_iter=100)

    def closure():
        opt.zero_grad()
        loss = losses.alice(f.expand(3), log_r, torch.ones(3, dtype=torch.float64))
        loss.backward()
        return loss

    opt.step(closure)
    s = torch.sigmoid(log_r).mean()
    assert f.item() == pytest.approx(torch.log(s / (1 - s)).item(), abs=1e-6)


def test_rolr_clip_is_a_parameter():
    assert losses.rolr(t(0.0), t(0.0), t(5.0), t(1.0), clip=3.0).item() == pytest.approx((1 - math.exp(3.0)) ** 2)
