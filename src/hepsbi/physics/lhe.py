r"""Les Houches event files (LHE, plain or gzipped), read in chunks into arrays.

An LHE file (Alwall et al., Comput. Phys. Commun. 176 (2007) 300, hep-ph/0609017; weights: the Les Houches 2013
proposal, arXiv:1405.1067) is an XML-like text: a header (with, from MadGraph and POWHEG, an ``<initrwgt>`` block
declaring the weight variations), an ``<init>`` block (beams, PDF sets, the weighting strategy and one line per
process with its cross section in pb), then ``<event>`` blocks: a line (NUP, IDPRUP, XWGTUP, SCALUP, AQEDUP,
AQCDUP), NUP particle lines (IDUP, ISTUP, MOTHUP×2, ICOLUP×2, PUP×5, VTIMUP, SPINUP) and optionally ``<rwgt>``
with one ``<wgt id=…>`` per declared variation — benchmark points of MadGraph's reweight module, scale and PDF
variations. Weights may be negative (NLO).

:func:`read_header` parses everything before the first event; :func:`iter_chunks` streams the events in chunks
of ``chunk_events`` (memory O(chunk), whatever the file size), the numbers of a chunk parsed by numpy at once.
Weight variations are recognised by what they are — ``MUR``/``MUF``/``PDF`` attributes (MadGraph ≥ 2.6), or
``muR=… muF=…``, ``PDF set = …``, ``lhapdf=…`` in their text (older MadGraph, POWHEG) — not by group names.
"""

from __future__ import annotations

import gzip
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from hepsbi.errors import DataError

__all__ = ["PARTICLE_COLUMNS", "LHEChunk", "LHEHeader", "WeightInfo", "iter_chunks", "open_text", "read_header", "summarise"]

#: the columns of a particle line, in file order
PARTICLE_COLUMNS = ("id", "status", "mother1", "mother2", "color1", "color2", "px", "py", "pz", "e", "m", "lifetime",
                    "spin")
_WGT = re.compile(r"""<wgt\s+id\s*=\s*['"]([^'"]+)['"][^>]*>\s*([^<\s]+)\s*</wgt>""")
_KEY_VALUE = re.compile(r"([A-Za-z_][A-Za-z_ ]*?)\s*=\s*([-+0-9.eEdD]+)")


@dataclass
class WeightInfo:
    """One weight variation declared in ``<initrwgt>``: its id, its group's name, its text and attributes, and what
    it is (:attr:`kind`: ``scale``, ``pdf`` or ``other``, e.g. a reweighting benchmark)."""

    id: str
    group: str
    text: str
    attributes: dict[str, str] = field(default_factory=dict)

    def _values(self) -> dict[str, str]:
        """Attributes and the key = value pairs of the text, keys upper-case without spaces."""
        found = {k.replace(" ", "").upper(): v for k, v in _KEY_VALUE.findall(self.text)}
        return found | {k.upper(): v for k, v in self.attributes.items()}

    def _number(self, key: str) -> float | None:
        """The value of ``key`` (upper case) as a number (Fortran exponents read), None when not given."""
        value = self._values().get(key)
        return None if value is None else float(value.replace("d", "e").replace("D", "e"))

    @property
    def mur(self) -> float | None:
        """The renormalisation-scale factor μ_R/μ_0, if the variation says."""
        return self._number("MUR")

    @property
    def muf(self) -> float | None:
        """The factorisation-scale factor μ_F/μ_0, if the variation says."""
        return self._number("MUF")

    @property
    def pdf(self) -> int | None:
        """The LHAPDF set id, if the variation names one (``PDF``, ``PDFSET``, ``LHAPDF``)."""
        for key in ("PDF", "PDFSET", "LHAPDF"):
            value = self._number(key)
            if value is not None:
                return int(value)
        return None

    @property
    def kind(self) -> str:
        """``scale`` when μ_R or μ_F differs from 1, ``pdf`` when a PDF set is named and the scales (if given) are
        nominal, else ``other`` (the nominal weight, a reweighting benchmark, …)."""
        mur, muf = self.mur, self.muf
        if (mur is not None and mur != 1.0) or (muf is not None and muf != 1.0):
            return "scale"
        return "pdf" if self.pdf is not None else "other"


@dataclass
class LHEHeader:
    """What an LHE file says before its events.

    Attributes:
        beams: PDG ids of the two beams.  energies: their energies in GeV.  pdf_sets: PDFSUP of each beam.
        weighting: IDWTUP (3, ±4: events carry their physical weight in pb; ±: signed).
        processes: per process, ``{"id", "cross_section_pb", "error_pb", "max_weight"}``.
        weights: the declared weight variations, in file order.
    """

    beams: tuple[int, int]
    energies: tuple[float, float]
    pdf_sets: tuple[int, int]
    weighting: int
    processes: list[dict[str, float]]
    weights: list[WeightInfo]

    @property
    def sqrt_s(self) -> float:
        """√s in GeV for head-on beams."""
        return 2.0 * float(np.sqrt(self.energies[0] * self.energies[1]))

    @property
    def cross_section_pb(self) -> float:
        """Σ of the processes' cross sections, pb."""
        return float(sum(p["cross_section_pb"] for p in self.processes))

    def weight_ids(self) -> list[str]:
        return [w.id for w in self.weights]


@dataclass
class LHEChunk:
    """Events ``first … first + n − 1`` of a file as arrays.

    Attributes:
        weight: XWGTUP (n,), float64, signed.  process: IDPRUP (n,).  scale, aqed, aqcd: (n,).
        particles: (n, p_max, 13) in :data:`PARTICLE_COLUMNS` order, rows beyond an event's NUP filled with NaN.
        n_particles: NUP (n,).  rwgt: weight id → (n,), for every ``<wgt>`` the events carry.
    """

    first: int
    weight: np.ndarray
    process: np.ndarray
    scale: np.ndarray
    aqed: np.ndarray
    aqcd: np.ndarray
    particles: np.ndarray
    n_particles: np.ndarray
    rwgt: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.weight)

    def column(self, name: str) -> np.ndarray:
        """One particle column (n, p_max) by its name in :data:`PARTICLE_COLUMNS`."""
        return self.particles[:, :, PARTICLE_COLUMNS.index(name)]


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """The LHE file as text, plain or gzipped (told by its first two bytes)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such LHE file")
    with open(file, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    return gzip.open(file, "rt", encoding="utf-8", errors="replace") if gzipped else open(file, encoding="utf-8", errors="replace")


def _header_text(stream: IO[str], path: Path) -> str:
    """The text before the first ``<event``; the stream is left at the line after it."""
    lines: list[str] = []
    for line in stream:
        if line.lstrip().startswith("<event"):
            return "".join(lines)
        lines.append(line)
    if not any("<init" in line for line in lines):
        raise DataError(f"{path}: not an LHE file (no <init> block)")
    return "".join(lines)


def read_header(path: str | os.PathLike[str]) -> LHEHeader:
    """The beams, processes and declared weight variations of LHE file ``path``."""
    with open_text(path) as stream:
        return _parse_header(_header_text(stream, Path(path)), Path(path))


def _parse_header(text: str, path: Path) -> LHEHeader:
    init = re.search(r"<init[^>]*>(.*?)</init>", text, flags=re.S)
    if init is None:
        raise DataError(f"{path}: not an LHE file (no <init> block)")
    numbers = [line.split() for line in init.group(1).splitlines() if line.strip() and not line.lstrip().startswith(("#", "<"))]
    try:
        beam = numbers[0]
        n_processes = int(beam[9])
        processes = [{"cross_section_pb": float(p[0]), "error_pb": float(p[1]), "max_weight": float(p[2]), "id": int(p[3])}
                     for p in numbers[1:1 + n_processes]]
        header = LHEHeader((int(beam[0]), int(beam[1])), (float(beam[2]), float(beam[3])), (int(beam[6]), int(beam[7])),
                           int(beam[8]), processes, _weight_infos(text, path))
    except (IndexError, ValueError) as exc:
        raise DataError(f"{path}: malformed <init> block ({exc})") from None
    if len(processes) != n_processes:
        raise DataError(f"{path}: <init> declares {n_processes} processes but lists {len(processes)}")
    return header


def _weight_infos(text: str, path: Path) -> list[WeightInfo]:
    block = re.search(r"<initrwgt[^>]*>.*?</initrwgt>", text, flags=re.S)
    if block is None:
        return []
    try:
        root = ET.fromstring(block.group(0))
    except ET.ParseError as exc:
        raise DataError(f"{path}: malformed <initrwgt> block ({exc})") from None
    infos: list[WeightInfo] = []

    def visit(element: ET.Element, group: str) -> None:
        for child in element:
            if child.tag == "weightgroup":
                visit(child, child.get("name") or child.get("type") or "")
            elif child.tag == "weight":
                attributes = {k: v for k, v in child.attrib.items() if k != "id"}
                if "id" not in child.attrib:
                    raise DataError(f"{path}: a <weight> in <initrwgt> has no id")
                infos.append(WeightInfo(child.attrib["id"].strip(), group, (child.text or "").strip(), attributes))

    visit(root, "")
    return infos


def iter_chunks(path: str | os.PathLike[str], chunk_events: int = 50_000) -> Iterator[LHEChunk]:
    """The events of LHE file ``path`` in chunks of ``chunk_events`` (the last one shorter): O(chunk) memory."""
    if chunk_events < 1:
        raise DataError(f"chunk_events must be >= 1 (got {chunk_events})")
    file = Path(path)
    with open_text(file) as stream:
        _header_text(stream, file)
        pending: list[tuple[str, list[str], list[tuple[str, str]]]] = []
        first = 0
        body: list[str] = []
        wgts: list[tuple[str, str]] = []
        head, inside = "", True  # the stream is just past the first "<event"
        for line in stream:
            stripped = line.strip()
            if not inside:
                if stripped.startswith("<event"):
                    head, body, wgts, inside = "", [], [], True
                continue
            if stripped.startswith("</event"):
                pending.append((head, body, wgts))
                inside = False
                if len(pending) == chunk_events:
                    yield _chunk(pending, first, file)
                    first += len(pending)
                    pending = []
            elif stripped.startswith("<wgt"):
                wgts.extend(_WGT.findall(stripped))
            elif not stripped or stripped[0] in "<#":
                continue
            elif not head:
                head = stripped
            else:
                body.append(stripped)
        if inside and (head or body):
            raise DataError(f"{file}: event {first + len(pending) + 1} is not closed by </event> (truncated file?)")
        if pending:
            yield _chunk(pending, first, file)


def _numbers(lines: list[str], columns: int, what: str, file: Path, first: int) -> np.ndarray:
    """The numbers of ``lines`` as (len(lines), columns), parsed by numpy in one call (no list of tokens: a chunk's
    memory is its text and its arrays)."""
    text = " ".join(lines)
    try:
        values = np.fromstring(text, dtype=np.float64, sep=" ")
    except ValueError:
        try:  # Fortran exponents (1.0D+00)
            values = np.fromstring(text.replace("D", "E").replace("d", "e"), dtype=np.float64, sep=" ")
        except ValueError:
            raise DataError(f"{file}: events {first + 1}…: a {what} line is not numeric") from None
    if values.size != columns * len(lines):
        raise DataError(f"{file}: events {first + 1}…: {what} lines must have {columns} numbers each")
    return values.reshape(-1, columns)


def _chunk(events: list[tuple[str, list[str], list[tuple[str, str]]]], first: int, file: Path) -> LHEChunk:
    heads = _numbers([e[0] for e in events], 6, "event", file, first)
    counts = heads[:, 0].astype(np.int64)
    given = np.array([len(e[1]) for e in events])
    wrong = np.nonzero(given != counts)[0]
    if wrong.size:
        k = int(wrong[0])
        raise DataError(f"{file}: event {first + k + 1} declares {counts[k]} particles but has {given[k]} particle lines")
    flat = _numbers([line for e in events for line in e[1]], len(PARTICLE_COLUMNS), "particle", file, first)
    n, width = len(events), int(counts.max()) if len(events) else 0
    particles = np.full((n, width, len(PARTICLE_COLUMNS)), np.nan)
    rows = np.repeat(np.arange(n), counts)
    slots = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    particles[rows, slots] = flat
    rwgt: dict[str, np.ndarray] = {}
    ids = [wid for wid, _ in events[0][2]] if events else []
    if any(e[2] for e in events):
        for k, (_, _, wgts) in enumerate(events):
            if [wid for wid, _ in wgts] != ids:
                raise DataError(f"{file}: event {first + k + 1} carries weights {[w for w, _ in wgts][:5]}… where event "
                                f"{first + 1} carries {ids[:5]}…")
        values = _numbers([" ".join(v for _, v in e[2]) for e in events], len(ids), "<wgt>", file, first)
        rwgt = {wid: values[:, j].copy() for j, wid in enumerate(ids)}
    return LHEChunk(first, heads[:, 2].copy(), heads[:, 1].astype(np.int64), heads[:, 3].copy(), heads[:, 4].copy(),
                    heads[:, 5].copy(), particles, counts, rwgt)


def summarise(path: str | os.PathLike[str], chunk_events: int = 50_000) -> dict[str, Any]:
    """What ``hepsbi inspect`` shows of an LHE file: the header, the number of events, Σ of the event weights and of
    the negative ones, and per declared weight variation its kind and Σ of its weights (one pass, O(chunk) memory)."""
    header = read_header(path)
    events, total, negative, negative_sum = 0, 0.0, 0, 0.0
    sums: dict[str, float] = {}
    for chunk in iter_chunks(path, chunk_events):
        events += len(chunk)
        total += float(chunk.weight.sum())
        negative += int((chunk.weight < 0).sum())
        negative_sum += float(chunk.weight[chunk.weight < 0].sum())
        for wid, values in chunk.rwgt.items():
            sums[wid] = sums.get(wid, 0.0) + float(values.sum())
    declared = {w.id for w in header.weights}
    undeclared = sorted(set(sums) - declared)
    return {"header": header, "events": events, "weight_sum": total, "negative": negative,
            "negative_weight_sum": negative_sum, "variation_sums": sums, "undeclared_weights": undeclared}
