import os
from pathlib import Path

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


class QuadraticWeightedNoMorphing:
    r"""A weighted simulator with closed forms, for the analysis layer: a pool of z ~ Exp(1) events at θ_ref = 0
    with equal weights (σ = 2 pb), event weight ratio r(z | c) = (1 + c z)², observables x = z + N(0, 0.1²) and
    u ~ U(0, 1) (independent of c). Implements :class:`hepsbi.simulators.protocol.WeightedSimulator`."""

    observable_names = ("x", "u")

    def __init__(self, n_events: int = 4000, seed: int = 0):
        from hepsbi.space import Parameter, ParameterSpace

        self.space = ParameterSpace([Parameter("c", -0.5, 0.5, reference=0.0)])
        self.n_events, self.seed = n_events, seed
        self._events = None

    def generate(self, n_events=None, seed=None):
        import numpy as np

        from hepsbi.data.events import Events

        n = self.n_events if n_events is None else n_events
        rng = np.random.default_rng(self.seed if seed is None else seed)
        z = rng.exponential(size=(n, 1))
        x = np.hstack([z + 0.1 * rng.normal(size=(n, 1)), rng.uniform(size=(n, 1))])
        self._events = Events(x, z, np.full(n, 2.0 / n), ["x", "u"], ["z"], {})
        return self._events

    def use_events(self, events):
        self._events = events

    @property
    def events(self):
        return self._events if self._events is not None else self.generate()

    def weight_ratio(self, z, theta):
        theta = torch.as_tensor(theta, dtype=torch.float64)
        c = theta[0] if theta.dim() == 1 else theta[:, 0]
        return (1 + c * torch.as_tensor(z, dtype=torch.float64)[:, 0]) ** 2

    def _sigma_ratio(self, theta):
        import numpy as np

        e = self.events
        a = torch.tensor([np.sum(e.weights), np.sum(2 * e.weights * e.z[:, 0]), np.sum(e.weights * e.z[:, 0] ** 2)])
        c = torch.as_tensor(theta, dtype=torch.float64)
        c = c[0] if c.dim() == 1 else c[:, 0]
        return (a[0] + a[1] * c + a[2] * c**2) / a[0]

    def joint_log_prob(self, z, theta):
        return torch.log(self.weight_ratio(z, theta)) - torch.log(self._sigma_ratio(theta))

    def sample_weighted(self, n, generator):
        e = self.events
        index = torch.randperm(len(e), generator=generator)[:n].numpy()
        w = e.weights[index] * (e.weights.sum() / e.weights[index].sum())
        return torch.from_numpy(e.x[index]), torch.from_numpy(e.z[index]), torch.from_numpy(w)

    def sample(self, theta, generator):
        e = self.events
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, 1)
        z = torch.from_numpy(e.z)
        index = torch.stack([torch.multinomial(torch.from_numpy(e.weights) * self.weight_ratio(z, t), 1, generator=generator)[0]
                             for t in theta]).numpy()
        return torch.from_numpy(e.x[index]), torch.from_numpy(e.z[index])

    def asimov(self, theta_true, luminosity_pb):
        e = self.events
        z = torch.from_numpy(e.z)
        return torch.from_numpy(e.x), z, torch.from_numpy(e.weights) * self.weight_ratio(z, theta_true) * luminosity_pb

    def expected_counts(self, bin_index, n_bins, luminosity_pb):
        import numpy as np

        e = self.events
        inside = np.asarray(bin_index) >= 0

        def counts(theta):
            r = self.weight_ratio(torch.from_numpy(e.z[inside]), theta).numpy()
            return np.bincount(np.asarray(bin_index)[inside], weights=e.weights[inside] * r, minlength=n_bins) * luminosity_pb

        return counts


class QuadraticWeighted(QuadraticWeightedNoMorphing):
    """The same, with its morphing basis m(c) = (1, c, c²) and coefficients a = (1, 2z, z²)."""

    def morphing_basis(self, theta):
        c = torch.as_tensor(theta, dtype=torch.float64).reshape(-1)[0]
        return torch.stack([torch.ones_like(c), c, c**2])

    def morphing_coefficients(self, z):
        z = torch.as_tensor(z, dtype=torch.float64)[:, 0]
        return torch.stack([torch.ones_like(z), 2 * z, z**2], dim=1)


@pytest.fixture
def weighted_toy() -> QuadraticWeighted:
    return QuadraticWeighted()


@pytest.fixture
def weighted_toy_no_morphing() -> QuadraticWeightedNoMorphing:
    return QuadraticWeightedNoMorphing()


@pytest.fixture(scope="session")
def morphing_data():
    """Reweighted training data of the weighted toy, with its morphing coefficients (for method 'morphing')."""
    from hepsbi.data.training import TrainingData

    return TrainingData.from_simulator(QuadraticWeighted(n_events=2000), 400, seed=5)


SBOTTOM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pyhf-ins1748602-probability-models.tar.gz"
SBOTTOM_PATCHES = ("sbottom_1300_205_60", "sbottom_600_280_150")


@pytest.fixture(scope="session")
def sbottom(tmp_path_factory) -> Path:
    """The published ATLAS sbottom likelihoods (HEPData ins1748602): RegionA's background-only workspace and two
    signal patches, RegionB's workspace, extracted into a folder of their own; skipped without shared data."""
    import tarfile

    if not SBOTTOM.is_file():
        pytest.skip(f"published likelihoods not found at {SBOTTOM}")
    out = tmp_path_factory.mktemp("sbottom")
    members = ["RegionA/BkgOnly.json", "RegionB/BkgOnly.json", *(f"RegionA/patch.{p}.json" for p in SBOTTOM_PATCHES)]
    with tarfile.open(SBOTTOM) as tar:
        for member in members:
            tar.extract(member, out, filter="data")
    return out
