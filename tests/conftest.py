import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def assert_joint_score_matches_finite_differences(sim, z, theta, rtol, atol=1e-7, eps=1e-6):
    """The autodiff joint score of ``sim`` equals central finite differences of its joint_log_prob."""
    import numpy as np

    from hepsbi.simulators import joint_score

    score = joint_score(sim, z, theta)
    for j in range(score.shape[1]):
        step = torch.zeros(score.shape[1], dtype=torch.float64)
        step[j] = eps
        fd = (sim.joint_log_prob(z, theta + step) - sim.joint_log_prob(z, theta - step)) / (2 * eps)
        np.testing.assert_allclose(score[:, j].numpy(), fd.numpy(), rtol=rtol, atol=atol)
