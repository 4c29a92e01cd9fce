r"""Driving Pythia 8 (``pythia8mc``): Drell–Yan at the reference point, in mass slices, two modes.

* ``shower=False``: hard process only (``PartonLevel:all = off``, ``HadronLevel:all = off``); one thin
  Python loop per event reads the process record — the only per-event Python loop in hepsbi.
* ``shower=True``: parton shower, MPI and hadronisation; a whole slice comes from one ``nextBatch`` call
  (awkward arrays), with no Python loop over events or particles.

:class:`LHEShower` showers the events of an LHE file from another generator (``Beams:frameType = 4``), with
MLM or FxFx jet merging (Pythia's ``CombineMatchingInput`` hook, the ``JetMatching:*`` settings) and, for events
matched at NLO by MadGraph5_aMC@NLO, the shower settings MC@NLO matching assumes (:data:`AMCATNLO_SETTINGS`).

Every setting goes through ``readString``; a rejected setting or a failed ``init`` is a
:class:`~hepsbi.errors.SimulatorError` naming it. Seeds are explicit (``Random:seed``) and recorded.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepsbi.errors import SimulatorError

__all__ = ["MassSlice", "PartonLevel", "PythiaRun", "PythiaBatches", "LHEShower", "ShowerBatch", "AMCATNLO_SETTINGS", "LATENT_COLUMNS", "MB_TO_PB",
           "check_seed", "hard_leptons", "merging_settings", "pythia_version", "read_settings"]

MB_TO_PB = 1e9
#: Columns of the parton-level record of each event.
LATENT_COLUMNS = (
    "id1", "id2", "x1", "x2", "s_hat", "alpha_em",
    "lm_px", "lm_py", "lm_pz", "lm_e", "lp_px", "lp_py", "lp_pz", "lp_e",
)
_LEPTON_IDS = {"e": 11, "mu": 13, "tau": 15}
_CI_PROCESS = {11: "QCffbar2eebar", 13: "QCffbar2mumubar", 15: "QCffbar2tautaubar"}


def hard_leptons(latent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hard ℓ⁻ and ℓ⁺ four-momenta, each (n, 4) as (E, px, py, pz), from records with :data:`LATENT_COLUMNS`."""
    return latent[:, [9, 6, 7, 8]], latent[:, [13, 10, 11, 12]]


def pythia_version() -> str:
    """Version of the installed pythia8mc package."""
    from importlib.metadata import version

    return version("pythia8mc")


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 (Pythia prints its complaints from C++) for the block; C's buffered stdout is
    flushed before the descriptor comes back, or what C++ wrote in the block would appear later."""
    import ctypes

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def check_seed(seed: int, key: str = "name") -> None:
    """Pythia's ``Random:seed`` must lie in [1, 900 000 000]: a :class:`SimulatorError` otherwise."""
    if not 1 <= int(seed) <= 900_000_000:
        raise SimulatorError(f"Pythia seeds must lie in [1, 900000000] (got {seed})", key=key)


def read_settings(settings: Sequence[str]) -> tuple[Any, list[str]]:
    """A new (uninitialised) Pythia with ``settings`` read quietly, and the settings it rejected (the callers name
    them in their errors)."""
    import pythia8mc

    with _quiet_stdout():
        pythia = pythia8mc.Pythia("", False)
        rejected = [s for s in settings if not pythia.readString(s)]
    return pythia, rejected


@dataclass(frozen=True)
class MassSlice:
    """A range of m̂ = √ŝ in GeV (``PhaseSpace:mHatMin/mHatMax``) and how many events to generate in it."""

    m_min: float
    m_max: float
    n_events: int

    def __post_init__(self) -> None:
        if not 0 < self.m_min < self.m_max:
            raise SimulatorError(f"mass slice needs 0 < m_min < m_max (got {self.m_min}, {self.m_max})")
        if self.n_events < 1:
            raise SimulatorError(f"mass slice [{self.m_min}, {self.m_max}] needs n_events >= 1 (got {self.n_events})")


@dataclass
class PartonLevel:
    """What one slice of generation returns.

    Attributes:
        latent: (n, 14) parton-level record, columns :data:`LATENT_COLUMNS` (GeV).
        weights: (n,) event weights in pb (σ_slice / n_slice × Pythia's own event weight).
        sigma_pb, sigma_err_pb: Pythia's cross section of the slice and its error.
        final_state: with the shower, per event the final-state particles (awkward array), else None.
        settings: every setting passed to Pythia, in order.
        seed: the ``Random:seed`` used.
    """

    latent: np.ndarray
    weights: np.ndarray
    sigma_pb: float
    sigma_err_pb: float
    final_state: Any = None
    settings: list[str] = field(default_factory=list)
    seed: int = 0


class PythiaRun:
    r"""Generates q q̄ → γ*/Z → ℓ⁺ℓ⁻ with Pythia, one mass slice at a time.

    Arguments:
        lepton: ``"e"``, ``"mu"`` or ``"tau"``.
        energy: √s in GeV.
        shower: full parton shower + MPI + hadronisation (slow) or hard process only (fast).
        process: Pythia process settings. Default, hard process only: ``WeakSingleBoson:ffbar2gmZ = on`` with
            the Z⁰ decaying to the lepton only (2 → 1, fastest). Default with the shower:
            ``ContactInteractions:QCffbar2<l><l>bar = on`` with every η = 0, the same γ*/Z process at LO
            written as 2 → 2, whose outgoing leptons keep their hard-process momenta in the event record, so
            that whole batches come out of ``nextBatch`` with exact parton-level kinematics. (The closure
            test passes contact-interaction settings here to generate directly at θ.)
        settings: further Pythia settings, applied last.
    """

    def __init__(
        self,
        lepton: str = "mu",
        energy: float = 13000.0,
        shower: bool = False,
        process: Sequence[str] | None = None,
        settings: Sequence[str] = (),
    ):
        if lepton not in _LEPTON_IDS:
            raise SimulatorError(f"lepton must be one of {sorted(_LEPTON_IDS)} (got {lepton!r})")
        self.lepton_id = _LEPTON_IDS[lepton]
        self.energy = float(energy)
        self.shower = bool(shower)
        if process is not None:
            self.process = list(process)
        elif self.shower:
            self.process = [f"ContactInteractions:{_CI_PROCESS[self.lepton_id]} = on"]
        else:
            self.process = ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", f"23:onIfAny = {self.lepton_id}"]
        self.settings = list(settings)

    def settings_for(self, mass_slice: MassSlice, seed: int) -> list[str]:
        """All settings for one slice, in the order they are read."""
        base = [
            f"Beams:eCM = {self.energy}",
            *self.process,
            f"PhaseSpace:mHatMin = {mass_slice.m_min}",
            f"PhaseSpace:mHatMax = {mass_slice.m_max}",
            "Random:setSeed = on",
            f"Random:seed = {int(seed)}",
            "Next:numberCount = 0",
            "Print:quiet = on",
        ]
        if not self.shower:
            base += ["PartonLevel:all = off", "HadronLevel:all = off"]
        return base + self.settings

    def check_settings(self) -> None:
        """Read the process and user settings into a throwaway Pythia (no initialisation, ~50 ms): a setting
        Pythia rejects is a :class:`SimulatorError` naming it now, not when the first slice is generated."""
        _, rejected = read_settings([*self.process, *self.settings])
        if rejected:
            raise SimulatorError(f"Pythia rejects the setting(s) {rejected}")

    def _pythia(self, settings: list[str]) -> Any:
        pythia, rejected = read_settings(settings)
        if rejected:
            raise SimulatorError(f"Pythia rejected the setting {rejected[0]!r}")
        if not pythia.init():
            raise SimulatorError(f"Pythia failed to initialise with settings {settings}")
        return pythia

    def generate(self, mass_slice: MassSlice, seed: int) -> PartonLevel:
        """Generate ``mass_slice.n_events`` events with ``Random:seed = seed`` (1 ≤ seed ≤ 900 000 000)."""
        check_seed(seed)
        settings = self.settings_for(mass_slice, seed)
        pythia = self._pythia(settings)
        if self.shower:
            latent, event_weights, final_state = self._batch(pythia, mass_slice.n_events)
        else:
            latent, event_weights = self._loop(pythia, mass_slice.n_events)
            final_state = None
        info = pythia.infoPython()
        sigma, sigma_err = info.sigmaGen() * MB_TO_PB, info.sigmaErr() * MB_TO_PB
        if len(latent) == 0:
            raise SimulatorError(f"Pythia produced no events in slice [{mass_slice.m_min}, {mass_slice.m_max}] GeV")
        weights = sigma * event_weights / event_weights.sum()
        return PartonLevel(latent, weights, sigma, sigma_err, final_state, settings, int(seed))

    def _hard_leptons(self, process: Any) -> tuple[Any, Any]:
        """The outgoing ℓ⁻ and ℓ⁺ of the hard process record."""
        minus = plus = None
        for i in range(3, process.size()):
            particle = process[i]
            if particle.status() == 23:
                if particle.id() == self.lepton_id:
                    minus = particle
                elif particle.id() == -self.lepton_id:
                    plus = particle
        if minus is None or plus is None:
            raise SimulatorError("the hard process has no lepton pair: check the process settings")
        return minus, plus

    def _record(self, pythia: Any) -> tuple[tuple[float, ...], float]:
        info = pythia.infoPython()
        minus, plus = self._hard_leptons(pythia.process)
        row = (
            info.id1(), info.id2(), info.x1(), info.x2(), info.sHat(), info.alphaEM(),
            minus.px(), minus.py(), minus.pz(), minus.e(), plus.px(), plus.py(), plus.pz(), plus.e(),
        )
        return row, info.weight()

    def _loop(self, pythia: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((n, len(LATENT_COLUMNS)))
        weights = np.empty(n)
        k = 0
        for _ in range(n):
            if not pythia.next():
                continue
            out[k], weights[k] = self._record(pythia)
            k += 1
        return out[:k], weights[:k]

    def _batch(self, pythia: Any, n: int) -> tuple[np.ndarray, np.ndarray, Any]:
        # One nextBatch call for the whole slice: the event loop stays in C++ and the event record comes back
        # as awkward arrays. The hard-process leptons are the entries with |status| = 23 (a 2 → 2 process
        # keeps their original momenta there; later copies carry the shower's recoil).
        import awkward as ak

        batch = pythia.nextBatch(n)
        if len(batch) == 0:
            return np.empty((0, len(LATENT_COLUMNS))), np.empty(0), None
        prt, info = batch["prt"], batch["info"]
        hard = prt[abs(prt.status) == 23]
        minus, plus = ak.firsts(hard[hard.id == self.lepton_id]), ak.firsts(hard[hard.id == -self.lepton_id])
        if ak.any(ak.is_none(minus)) or ak.any(ak.is_none(plus)):
            raise SimulatorError(
                "an event's hard process has no lepton pair in the event record: with the shower, use a 2 -> 2 "
                "process (the default ContactInteractions one) whose leptons are outgoing partons"
            )
        columns = [
            info.id1, info.id2, info.x1, info.x2, info.sHat, info.alphaEM,
            minus.p.px, minus.p.py, minus.p.pz, minus.p.e, plus.p.px, plus.p.py, plus.p.pz, plus.p.e,
        ]
        latent = np.stack([ak.to_numpy(c).astype(np.float64) for c in columns], axis=1)
        weights = ak.to_numpy(info.weights[:, 0]).astype(np.float64)
        return latent, weights, prt[prt.status > 0]


#: Shower settings for events matched at NLO by MadGraph5_aMC@NLO (MC@NLO): the shower starts at the scale the
#: generator wrote (pTmaxMatch = 1, no fudge), without Pythia's own matrix-element corrections, with the global
#: recoil of the first emission the MC@NLO subtraction terms were computed for (the aMC@NLO settings of the
#: experiments' production configurations).
AMCATNLO_SETTINGS = (
    "SpaceShower:pTmaxMatch = 1", "SpaceShower:pTmaxFudge = 1", "SpaceShower:MEcorrections = off",
    "TimeShower:pTmaxMatch = 1", "TimeShower:pTmaxFudge = 1", "TimeShower:MEcorrections = off",
    "TimeShower:globalRecoil = on", "TimeShower:limitPTmaxGlobal = on", "TimeShower:nMaxGlobalRecoil = 1",
    "TimeShower:globalRecoilMode = 2", "TimeShower:nMaxGlobalBranch = 1", "TimeShower:weightGluonToQuark = 1",
)
MERGING_SCHEMES = ("mlm", "fxfx")


def merging_settings(scheme: str, qcut: float, n_jet_max: int, qcut_me: float | None = None) -> list[str]:
    r"""Pythia's ``JetMatching`` settings for MLM or FxFx merging of MadGraph samples (k_T jets, R = 1, every η).

    Arguments:
        scheme: ``"mlm"`` (LO multi-jet samples) or ``"fxfx"`` (NLO multi-jet samples; also adds
            :data:`AMCATNLO_SETTINGS`).
        qcut: the merging scale Q_cut in GeV (``JetMatching:qCut``): showered jets above it must match partons.
        n_jet_max: the largest number of partons of the Born matrix elements (``JetMatching:nJetMax``).
        qcut_me: FxFx only, the generation cut on the partons (MadGraph's ``ptj``; ``JetMatching:qCutME``),
            below ``qcut``.
    """
    if scheme not in MERGING_SCHEMES:
        raise SimulatorError(f"merging scheme must be one of {list(MERGING_SCHEMES)} (got {scheme!r})", key="merging.scheme")
    if not qcut > 0:
        raise SimulatorError(f"merging qcut must be > 0 GeV (got {qcut})", key="merging.qcut")
    if int(n_jet_max) < 0:
        raise SimulatorError(f"merging n_jet_max must be >= 0 (got {n_jet_max})", key="merging.n_jet_max")
    out = ["JetMatching:merge = on", "JetMatching:scheme = 1", "JetMatching:setMad = off", "JetMatching:jetAlgorithm = 2",
           "JetMatching:slowJetPower = 1", "JetMatching:coneRadius = 1.0", "JetMatching:etaJetMax = 10.0",
           f"JetMatching:qCut = {float(qcut)}", f"JetMatching:nJetMax = {int(n_jet_max)}"]
    if scheme == "fxfx":
        if qcut_me is None or not 0 < qcut_me < qcut:
            raise SimulatorError(f"FxFx merging needs 0 < qcut_me < qcut (got qcut_me={qcut_me}, qcut={qcut})",
                                 key="merging.qcut_me")
        out += ["JetMatching:doFxFx = on", f"JetMatching:qCutME = {float(qcut_me)}", *AMCATNLO_SETTINGS]
    return out


@dataclass
class ShowerBatch:
    """Showered events of one :meth:`LHEShower.batches` step.

    Attributes:
        final_state: per event the final-state particles (awkward records ``id`` and four-momentum ``p``).
        weights: (n,) Pythia's event weights (XWGTUP for IDWTUP = ±4).
        id1, id2: (n,) PDG ids of the incoming partons.
    """

    final_state: Any
    weights: np.ndarray
    id1: np.ndarray
    id2: np.ndarray


class PythiaBatches:
    r"""Pythia 8 events with the shower (and hadronisation unless a setting turns it off), batch by batch: the final
    state of every event as awkward arrays from ``nextBatch``, no Python loop over events.

    Arguments:
        process: the settings that define the events (a process and ``Beams:eCM``, or an LHE file: :class:`LHEShower`).
        merging: ``None`` or the arguments of :func:`merging_settings` (``scheme``, ``qcut``, ``n_jet_max``,
            ``qcut_me``).
        settings: further Pythia settings, applied last (e.g. ``"HadronLevel:all = off"``).
        seed: ``Random:seed`` (1 ≤ seed ≤ 900 000 000).

    Events vetoed by the merging are dropped; :attr:`tried` counts the events Pythia started. After the last batch,
    :attr:`sigma_pb` is Pythia's cross section (after merging) and :attr:`strategy` the LHE file's IDWTUP (for ±4
    the weights are XWGTUP in pb and Σ w / tried = σ).
    """

    def __init__(self, process: Sequence[str], merging: dict[str, Any] | None = None, settings: Sequence[str] = (),
                 seed: int = 1):
        check_seed(seed, key="seed")
        self.settings = [*process, "Random:setSeed = on", f"Random:seed = {int(seed)}", "Next:numberCount = 0",
                         "Print:quiet = on"]
        self.merging = dict(merging) if merging else None
        if self.merging is not None:
            unknown = set(self.merging) - {"scheme", "qcut", "n_jet_max", "qcut_me"}
            if unknown:
                raise SimulatorError(f"unknown merging option(s) {sorted(unknown)}; known: scheme, qcut, n_jet_max, qcut_me",
                                     key="merging")
            missing = {"scheme", "qcut", "n_jet_max"} - set(self.merging)
            if missing:
                raise SimulatorError(f"merging needs {sorted(missing)}", key="merging")
            self.settings += merging_settings(**self.merging)
        self.settings += list(settings)
        self.tried = 0
        self.sigma_pb = float("nan")
        self.strategy = 0
        self._hook: Any = None

    def _read(self) -> Any:
        pythia, rejected = read_settings(self.settings)
        if rejected:
            raise SimulatorError(f"Pythia rejects the setting(s) {rejected}", key="pythia_settings")
        return pythia

    def check_settings(self) -> None:
        """Read the settings into a throwaway Pythia (no initialisation): a rejected one is a named error now."""
        self._read()

    def _pythia(self) -> Any:
        import pythia8mc

        pythia = self._read()
        with _quiet_stdout():
            if self.merging is not None:  # the matching hook reads the JetMatching settings at init
                self._hook = pythia8mc.CombineMatchingInput()
                self._hook.setHook(pythia)
            if not pythia.init():
                raise SimulatorError(f"Pythia failed to initialise with settings {self.settings}", key="paths")
        return pythia

    def batches(self, size: int, n_events: int | None = None) -> Iterator[ShowerBatch]:
        """Showered events, ``size`` at a time, until the file ends (or ``n_events`` events are accepted)."""
        import awkward as ak

        pythia = self._pythia()
        info = batch = None
        accepted = 0
        try:
            while n_events is None or accepted < n_events:
                want = size if n_events is None else min(size, n_events - accepted)
                with _quiet_stdout():
                    batch = pythia.nextBatch(want)
                info = pythia.infoPython()  # a snapshot: read it again after every batch
                self.tried = int(info.nTried())
                if len(batch) > 0:
                    accepted += len(batch)
                    prt, event = batch["prt"], batch["info"]
                    yield ShowerBatch(prt[prt.status > 0], ak.to_numpy(event.weights[:, 0]).astype(np.float64),
                                      ak.to_numpy(event.id1).astype(np.int64), ak.to_numpy(event.id2).astype(np.int64))
                if info.atEndOfFile() or len(batch) < want:
                    break
            info = pythia.infoPython()
            self.sigma_pb = float(info.sigmaGen()) * MB_TO_PB
            self.strategy = int(info.lhaStrategy())
        finally:
            with _quiet_stdout():  # the matching hook prints its statistics when Pythia and its info records go
                pythia = info = batch = self._hook = None


class LHEShower(PythiaBatches):
    """Pythia showering the events of one LHE file, plain or gzipped (``Beams:frameType = 4``), batch by batch until
    the file ends; arguments as :class:`PythiaBatches`."""

    def __init__(self, path: str | os.PathLike[str], merging: dict[str, Any] | None = None, settings: Sequence[str] = (),
                 seed: int = 1):
        self.path = os.fspath(path)
        super().__init__(["Beams:frameType = 4", f"Beams:LHEF = {self.path}"], merging, settings, seed)
