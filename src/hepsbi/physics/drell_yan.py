r"""Drell–Yan with lepton–quark contact interactions: a Simulator backed by Pythia 8 and morphing.

Events are generated once, at the Standard Model (θ = 0), with Pythia in mass slices. For every event the
torch matrix element (:mod:`hepsbi.physics.matrix_elements`) gives the weight at any θ as a quadratic
polynomial (:mod:`hepsbi.physics.morphing`) whose 15 coefficients, normalised to the SM weight, are stored
in the latent record z. Hence

.. math:: \log p(z \mid θ) = \log \frac{|M(z; θ)|^2}{|M(z; 0)|^2} - \log \frac{σ_\text{fid}(θ)}{σ_\text{fid}(0)}
          + \text{const},

exact and differentiable in θ; joint ratios and scores follow by autodiff like for every simulator.
Parameters: θ = (c_LL, c_LR, c_RL, c_RR) in TeV⁻², c = 4πη/Λ² (Pythia's ``ContactInteractions``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi._version import __version__
from hepsbi.data.events import Events, EventStore
from hepsbi.errors import SimulatorError
from hepsbi.physics import kinematics as kin
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.matrix_elements import HELICITIES, me_weight
from hepsbi.physics.morphing import QuadraticMorphing
from hepsbi.physics.observables import OBSERVABLES, compute_observables
from hepsbi.physics.pythia import LATENT_COLUMNS, MassSlice, PythiaRun, hard_leptons, pythia_version
from hepsbi.physics.standard_model import SMInputs
from hepsbi.simulators.pool import MorphedPool
from hepsbi.space import Parameter, ParameterSpace

__all__ = ["DrellYanContact", "DEFAULT_OBSERVABLES"]

DEFAULT_OBSERVABLES = ("m_ll", "cos_theta_cs", "y_ll", "pt_ll")
_MORPHING = QuadraticMorphing(len(HELICITIES), scale=0.5)
_N_KIN = len(LATENT_COLUMNS)
LATENT_NAMES = (*LATENT_COLUMNS, "cos_theta_star", *(f"morph_{k}" for k in range(_MORPHING.n_components)))


#: the smallest collision energy and dilepton mass a DrellYanContact accepts, GeV: a value typed in TeV lands below
MIN_ENERGY_GEV, MIN_MASS_GEV = 100.0, 10.0
#: the four contact-interaction coefficients, in the order of θ
ALL_PARAMETERS = tuple(f"c_{h}" for h in HELICITIES)


class DrellYanContact(MorphedPool):
    r"""p p → ℓ⁺ℓ⁻ with contact interactions (the Simulator protocol, plus weighted sampling).

    Arguments:
        lepton: ``"mu"`` (default), ``"e"`` or ``"tau"``.
        m_min, m_max: generated range of m_ℓℓ at parton level (GeV); ``m_max`` defaults to √s.
        energy: √s in GeV.
        n_events: events generated (split evenly over the mass slices).
        n_slices: mass slices with logarithmically spaced edges, so that the tail is populated.
        shower: full parton shower + MPI + hadronisation (jets, missing E_T) instead of the hard process.
        observables: names from :data:`hepsbi.physics.observables.OBSERVABLES`.
        detector: the fast detector; default :class:`FastDetector`.
        c_max: parameter ranges are [−c_max, c_max] TeV⁻² for each c.
        parameters: the free coefficients, a subset of c_LL, c_LR, c_RL, c_RR (the others stay 0), e.g.
            ``("c_LL", "c_LR")`` for a 2-D analysis.
        seed: seeds Pythia (slice i uses seed + i) and the detector.
        sm: electroweak inputs.
        settings: extra Pythia settings.
    """

    def __init__(
        self,
        lepton: str = "mu",
        m_min: float = 200.0,
        m_max: float | None = None,
        energy: float = 13000.0,
        n_events: int = 20_000,
        n_slices: int = 4,
        shower: bool = False,
        observables: Sequence[str] = DEFAULT_OBSERVABLES,
        detector: FastDetector | dict[str, Any] | None = None,
        c_max: float = 1.0,
        parameters: Sequence[str] = ALL_PARAMETERS,
        seed: int = 1,
        sm: SMInputs | dict[str, Any] | None = None,
        settings: Sequence[str] = (),
    ):
        if not energy >= MIN_ENERGY_GEV:  # units: GeV throughout (a value in TeV lands here)
            raise SimulatorError(f"energy = {energy:g} GeV is below {MIN_ENERGY_GEV:g} GeV: energies and masses are in "
                                 f"GeV ({energy:g} TeV = {1000 * energy:g} GeV)", key="options")
        if not m_min >= MIN_MASS_GEV:
            raise SimulatorError(f"m_min = {m_min:g} GeV is below {MIN_MASS_GEV:g} GeV, where the dilepton spectrum is "
                                 f"hadronic resonances: masses are in GeV ({m_min:g} TeV = {1000 * m_min:g} GeV)",
                                 key="options")
        self.run = PythiaRun(lepton=lepton, energy=energy, shower=shower, settings=settings)
        self.m_min, self.m_max = float(m_min), float(m_max if m_max is not None else energy)
        if not 0 < self.m_min < self.m_max <= energy:
            raise SimulatorError(f"need m_min < m_max <= energy (got m_min {self.m_min:g}, m_max {self.m_max:g}, energy "
                                 f"{energy:g} GeV)", key="options")
        if n_events < n_slices or n_slices < 1:
            raise SimulatorError(f"need n_slices >= 1 and n_events >= n_slices (got {n_events}, {n_slices})")
        self.n_events, self.n_slices, self.seed = int(n_events), int(n_slices), int(seed)
        self.observable_names = tuple(observables)
        unknown = [o for o in self.observable_names if o not in OBSERVABLES]
        if unknown or not self.observable_names:
            raise SimulatorError(f"unknown observable(s) {unknown}; available: {sorted(OBSERVABLES)}")
        if not 0 < c_max < math.inf:
            raise SimulatorError(f"c_max must be positive and finite (got {c_max})")
        self.run.check_settings()
        self.detector = FastDetector(**detector) if isinstance(detector, dict) else (detector or FastDetector())
        self.sm = SMInputs(**sm) if isinstance(sm, dict) else (sm or SMInputs())
        every = list(ALL_PARAMETERS)
        unknown = [p for p in parameters if p not in every]
        if unknown or not parameters or len(set(parameters)) != len(parameters):
            raise SimulatorError(f"parameters must be distinct names among {every} (got {list(parameters)})")
        self.free = [every.index(p) for p in every if p in parameters]  # columns of the full θ, in order
        c_5tev = 4 * np.pi / 25  # |c| for Λ = 5 TeV, |η| = 1
        benchmarks = {"eta_LL_minus_Lambda_5TeV": {"c_LL": -c_5tev}} if "c_LL" in parameters and c_max >= c_5tev else {}
        self.space = ParameterSpace(
            [Parameter(every[i], -c_max, c_max, reference=0.0, unit="TeV^-2") for i in self.free], benchmarks=benchmarks
        )
        self._events: Events | None = None
        self._sigma_coefficients: Tensor | None = None

    # -- generation --------------------------------------------------------------------------------------
    def mass_slices(self, n_events: int) -> list[MassSlice]:
        """m̂ slices with n_events spread evenly: logarithmically spaced edges from m_min up to 3 TeV (or
        m_max if lower), and one last slice from there to m_max (its cross section is tiny)."""
        top = min(self.m_max, 3000.0) if self.m_max > 3000.0 and self.n_slices > 1 else self.m_max
        inner = self.n_slices - 1 if top < self.m_max else self.n_slices
        edges = np.append(np.geomspace(self.m_min, top, inner + 1), [self.m_max] if top < self.m_max else [])
        per = np.full(self.n_slices, n_events // self.n_slices)
        per[: n_events % self.n_slices] += 1
        return [MassSlice(float(lo), float(hi), int(k)) for lo, hi, k in zip(edges[:-1], edges[1:], per)]

    def latent_from_parton_level(self, latent: np.ndarray) -> np.ndarray:
        """Append cos θ* and the normalised morphing coefficients to the Pythia record: (n, 14) → (n, 30)."""
        lm, lp = hard_leptons(latent)
        cos_star = kin.cos_theta_star(lm, lp, latent[:, 2], latent[:, 3], latent[:, 0])
        t = torch.from_numpy
        quark = t(np.abs(np.where(latent[:, 0] > 0, latent[:, 0], latent[:, 1]))).long()
        s_hat, cos_t, alpha = t(latent[:, 4]), t(cos_star), t(latent[:, 5])
        lepton_id = self.run.lepton_id

        def weight_at(theta: Tensor) -> Tensor:
            return me_weight(quark, s_hat, cos_t, theta.expand(len(quark), -1), alpha, lepton_id, self.sm)

        coefficients = _MORPHING.fit(weight_at)
        coefficients = coefficients / coefficients[:, :1]  # weight at θ = 0 is the constant term
        return np.concatenate([latent, cos_star[:, None], coefficients.numpy()], axis=1)

    def generate(self, n_events: int | None = None, seed: int | None = None) -> Events:
        """Run Pythia at the SM in mass slices, mine the morphing coefficients, apply the detector.

        Returns the events that pass the detector selection, weights in pb (Σ w = σ_fid at the SM). The
        result also becomes this simulator's event pool (for ``sample``, ``sample_weighted`` and σ(θ))."""
        n_events = self.n_events if n_events is None else int(n_events)
        seed = self.seed if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        parts_x, parts_z, parts_w, slice_info = [], [], [], []
        sigma_total, sigma_total_err2 = 0.0, 0.0
        settings: list[str] = []
        for i, mass_slice in enumerate(self.mass_slices(n_events)):
            parton = self.run.generate(mass_slice, seed=seed + i)
            settings = parton.settings
            z = self.latent_from_parton_level(parton.latent)
            leptons = np.stack(hard_leptons(parton.latent), axis=1)
            reco = self.detector.reconstruct(leptons, rng, parton.final_state, self.run.lepton_id)
            parts_x.append(compute_observables(reco, self.observable_names))
            parts_z.append(z[reco.passed])
            parts_w.append(parton.weights[reco.passed])
            sigma_total += parton.sigma_pb
            sigma_total_err2 += parton.sigma_err_pb**2
            slice_info.append({"m_min": mass_slice.m_min, "m_max": mass_slice.m_max, "n_events": len(parton.weights),
                               "n_passed": int(reco.passed.sum()), "sigma_pb": parton.sigma_pb,
                               "sigma_err_pb": parton.sigma_err_pb, "seed": parton.seed})
        weights = np.concatenate(parts_w)
        if len(weights) == 0:
            raise SimulatorError(
                f"no event passed the detector selection (lepton |eta| < {self.detector.lepton_eta_max}, "
                f"pT > {self.detector.lepton_pt_min} GeV) out of {n_events} generated; loosen the cuts or generate more"
            )
        provenance = {
            "generator": "pythia8mc",
            "pythia_version": pythia_version(),
            "hepsbi_version": __version__,
            "seed": seed,
            "shower": self.run.shower,
            "settings_last_slice": settings,
            "slices": slice_info,
            "weight_unit": "pb",  # Σ w = the fiducial cross section after the detector selection
            "sigma_total_pb": sigma_total,
            "sigma_total_err_pb": float(np.sqrt(sigma_total_err2)),
            "sm_inputs": self.sm.to_dict(),
            "detector": self.detector.to_dict(),
        }
        events = Events(np.concatenate(parts_x), np.concatenate(parts_z), weights, list(self.observable_names),
                        list(LATENT_NAMES), provenance)
        self.use_events(events)
        return events

    def generate_to_store(self, directory: str | Path, n_events: int, chunk_events: int = 50_000,
                          seed: int | None = None, merged: str | Path | None = None) -> Path:
        """Generate ``n_events`` in chunks of ``chunk_events``, each written to ``directory`` (an
        :class:`~hepsbi.data.EventStore`) as soon as it is made, then merge them into ``merged`` (default
        ``directory/events.h5``). Memory stays O(chunk). Chunk k uses Pythia seeds seed + 100·k + slice.
        The last chunk becomes the event pool; load the merged file with ``Events.load`` and
        :meth:`use_events` to use all of it."""
        if self.n_slices > 100:
            raise SimulatorError("generate_to_store supports at most 100 mass slices (seed spacing)")
        seed = self.seed if seed is None else int(seed)
        store = EventStore(directory)
        n_chunks = max(1, -(-int(n_events) // int(chunk_events)))
        sizes = np.full(n_chunks, int(n_events) // n_chunks)
        sizes[: int(n_events) % n_chunks] += 1
        for k, size in enumerate(sizes):
            store.write_chunk(k, self.generate(int(size), seed=seed + 100 * k))
        return store.merge(merged or Path(directory) / "events.h5", provenance={"n_generated": int(n_events), "seed": seed})

    def check_events(self, events: Events) -> None:
        """Only events this simulator made (its latent columns) can be its pool."""
        if events.latent_names != list(LATENT_NAMES):
            raise SimulatorError("these events were not made by DrellYanContact (latent columns differ)")

    # -- physics -----------------------------------------------------------------------------------------
    def full_theta(self, theta: Tensor | Sequence[float]) -> Tensor:
        """Embed θ of the free parameters, (p,) or (n, p), into (n, 4) = (c_LL, c_LR, c_RL, c_RR)."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        rows = theta.reshape(-1, self.space.dim)
        if len(self.free) == len(HELICITIES):
            return rows
        full = torch.zeros(rows.shape[0], len(HELICITIES), dtype=rows.dtype)
        full = full.index_copy(1, torch.tensor(self.free), rows)
        return full

    @property
    def _free_monomials(self) -> list[int]:
        """Monomials of the 4-parameter morphing that involve only the free parameters (the others vanish)."""
        free = set(self.free)
        pairs = [5 + k for k, (i, j) in enumerate(_MORPHING.pairs) if i in free and j in free]
        return [0, *(1 + i for i in self.free), *pairs]

    def morphing_coefficients(self, z: Tensor | np.ndarray) -> Tensor:
        """The per-event morphing coefficients stored in z, for the free parameters' monomials: (n, K) (a view of z
        when every parameter is free)."""
        coefficients = torch.as_tensor(z, dtype=torch.float64)[:, -_MORPHING.n_components:]
        free = self._free_monomials
        return coefficients if len(free) == _MORPHING.n_components else coefficients[:, free]
