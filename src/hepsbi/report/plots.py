r"""Plots a physicist wants to see after a run: learned vs exact log r, likelihood scans with the truth,
training curves, nuisance-parameter pulls, CLs with its Brazil band, Fisher-information ellipses, the
reweighting closure with the classifier's reliability, and posteriors (corner plot, SBC ranks, TARP coverage).
Every function writes one PNG (atomically) and returns its path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hepsbi.estimators.training import TrainingHistory  # noqa: E402
from hepsbi.files import atomic_path  # noqa: E402
from hepsbi.inference.scan import ScanResult, wilks_threshold  # noqa: E402

__all__ = ["plot_brazil", "plot_closure", "plot_correlation", "plot_coverage", "plot_disagreement", "plot_information_ellipses", "plot_log_ratio", "plot_posterior", "plot_profiles", "plot_pulls", "plot_sbc_ranks", "plot_scans", "plot_tarp", "plot_training", "plot_weights"]

#: Legend names of the reference likelihoods.
_LABELS = {"truth": "parton-level truth", "exact": "exact", "histogram": "histogram", "sally": "SALLY (binned)",
           "rate": "rate only", "sally_score": "SALLY (score)"}


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_log_ratio(theta: np.ndarray, exact: np.ndarray, learned: Mapping[str, np.ndarray],
                   path: str | os.PathLike[str], names: Sequence[str] | None = None, panels: int = 3) -> Path:
    """Learned log r̂ against the exact log r on the same events, one column per test point θ (up to ``panels`` of
    them, spread over the tested θ) so each curve belongs to one θ, with the residual log r̂ − log r beneath.

    Arguments:
        theta: (n, p) the test point of each event.  exact: (n,) exact log r.  learned: label → (n,) learned log r̂.
        names: the parameters' names (titles).
    """
    theta = np.asarray(theta).reshape(len(exact), -1)
    points = np.unique(theta, axis=0)
    # θ_ref itself (log r ≡ 0 on every event) is exact by construction: not worth a panel
    away = [p for p in points if np.max(np.abs(exact[np.all(theta == p, axis=1)])) > 1e-9] or list(points)
    chosen = [away[i] for i in sorted({round(k) for k in np.linspace(0, len(away) - 1, min(panels, len(away)))})]
    fig, axes = plt.subplots(2, len(chosen), figsize=(4.2 * len(chosen), 5.6), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.05})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, point in enumerate(chosen):
        rows = np.all(theta == point, axis=1)
        top, bottom = axes[0, column], axes[1, column]
        order = np.argsort(exact[rows])
        e = exact[rows][order]
        top.plot([e[0], e[-1]], [e[0], e[-1]], color="black", lw=1, label="exact")
        bottom.axhline(0.0, color="black", lw=1)
        for (label, values), colour in zip(learned.items(), colours):
            v = values[rows][order]
            mse = float(np.mean((v - e) ** 2))
            top.scatter(e, v, s=5, alpha=0.5, color=colour, label=f"{label} (MSE {mse:.2g})")
            bottom.scatter(e, v - e, s=5, alpha=0.5, color=colour)
        label = ", ".join(f"{n} = {v:.3g}" for n, v in zip(names or [f"θ{j}" for j in range(len(point))], point))
        top.set_title(label, fontsize=10)
        top.legend(loc="upper left", frameon=False, fontsize=8)
        bottom.set_xlabel(r"exact $\log r(x \mid \theta, \theta_\mathrm{ref})$")
        if column == 0:
            top.set_ylabel(r"learned $\log \hat r$")
            bottom.set_ylabel("learned − exact")
    fig.suptitle("learned vs exact log-likelihood ratio, per test point", y=0.99)
    return _save(fig, path)


_PROFILED = " (profiled)"


def _styles(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Line style and legend name of each likelihood: one colour per likelihood, its "X (profiled)" twin in the
    same colour, broad and translucent."""
    palette = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3)
    colours: dict[str, str] = {}
    out = {}
    for label in labels:
        base = label.removesuffix(_PROFILED)
        if base not in colours:
            colours[base] = next(palette)
        profiled = base != label
        out[label] = {"color": colours[base], "lw": 3.2 if profiled else 1.4, "alpha": 0.45 if profiled else 1.0,
                      "label": _LABELS.get(base, base) + (", profiled" if profiled else "")}
    return out


def _curves(ax: plt.Axes, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], styles: Mapping[str, dict[str, Any]],
            truth: float | None) -> None:
    """−2Δlog L curves (label → (x, q)) of one parameter, with Wilks' 68 % and 95 % lines and the truth; the x axis
    zoomed on where any curve is within twice its 95 % threshold."""
    lo, hi = np.inf, -np.inf
    for label, (x, q) in curves.items():
        ax.plot(x, q, **styles[label])
        near = np.asarray(x)[np.asarray(q) <= 2 * wilks_threshold("95", 1)]
        if len(near):
            lo, hi = min(lo, float(near.min())), max(hi, float(near.max()))
    if np.isfinite(lo) and hi > lo:
        ax.set_xlim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    for level in ("68", "95"):
        t = wilks_threshold(level, 1)
        ax.axhline(t, color="grey", lw=0.8, ls=":")
        ax.text(1.0, t, f" {level}% ", va="bottom", ha="right", color="grey", transform=ax.get_yaxis_transform())
    if truth is not None:
        ax.axvline(truth, color="black", ls="--", lw=1, label="true θ")
    ax.set_ylim(0, 3 * wilks_threshold("95", 1))


def plot_scans(
    scans: Mapping[str, ScanResult],
    truth: Mapping[str, float] | None,
    path: str | os.PathLike[str],
    units: Mapping[str, str] | None = None,
    caption: str | None = None,
) -> Path:
    """−2Δlog L curves (1 parameter) or 68 %/95 % contours (2 parameters) for each scan, with the truth;
    ``units`` {parameter: unit} label the axes, ``caption`` (e.g. "√s = 13 TeV, 139 fb⁻¹") goes in the corner.
    A scan labelled "X (profiled)" takes the colour of X, drawn broad and translucent beneath it; the axes
    zoom on the region where any curve is within twice its 95 % threshold; the legend sits beside the axes."""
    first = next(iter(scans.values()))
    fig, ax = plt.subplots(figsize=(6, 5))
    styles = _styles(list(scans))
    if len(first.names) == 1:
        name = first.names[0]
        _curves(ax, {label: (scan.axes[0], scan.q) for label, scan in scans.items()}, styles,
                truth[name] if truth else None)
        ax.set_xlabel(_axis_label(name, units))
        ax.set_ylabel(r"$-2\,\Delta \log L$")
    else:
        lo2, hi2 = np.array([np.inf, np.inf]), np.array([-np.inf, -np.inf])
        for label, scan in scans.items():
            style = styles[label]
            xs, ys = scan.axes  # each scan has its own (possibly zoomed) grid
            ax.contour(xs, ys, scan.q.T, levels=[wilks_threshold("68", 2), wilks_threshold("95", 2)],
                       colors=style["color"], linestyles=["-", "--"], linewidths=style["lw"], alpha=style["alpha"])
            ax.plot([], [], **style)
            if not label.endswith(_PROFILED):
                ax.plot(scan.mle[scan.names[0]], scan.mle[scan.names[1]], "o", color=style["color"], ms=4)
            inside = scan.q <= 2 * wilks_threshold("95", 2)
            if inside.any():
                ix, iy = np.nonzero(inside)
                lo2 = np.minimum(lo2, [xs[ix.min()], ys[iy.min()]])
                hi2 = np.maximum(hi2, [xs[ix.max()], ys[iy.max()]])
        if truth:
            ax.plot(truth[first.names[0]], truth[first.names[1]], "*", color="black", ms=12, label="true θ")
        if np.all(np.isfinite(lo2)) and np.all(hi2 > lo2):  # (a region one node wide keeps the full axes)
            pad2 = 0.1 * (hi2 - lo2)
            ax.set_xlim(lo2[0] - pad2[0], hi2[0] + pad2[0])
            ax.set_ylim(lo2[1] - pad2[1], hi2[1] + pad2[1])
        ax.plot([], [], color="black", ls="-", lw=1, label="68 % CL")
        ax.plot([], [], color="black", ls="--", lw=1, label="95 % CL")
        ax.set_xlabel(_axis_label(first.names[0], units))
        ax.set_ylabel(_axis_label(first.names[1], units))
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    ax.set_title("likelihood scan")
    if caption:
        ax.text(0.02, 0.98, caption, transform=ax.transAxes, va="top", ha="left", fontsize=9)
    return _save(fig, path)


def plot_profiles(scans: Mapping[str, ScanResult], truth: Mapping[str, float] | None, path: str | os.PathLike[str],
                  units: Mapping[str, str] | None = None) -> Path:
    """The 1-D profiles of 2-D scans: for each parameter, −2Δlog L minimised over the other on each scan's grid,
    one panel per parameter, every likelihood (profiled ones broad and translucent in their colour), Wilks' 68 %
    and 95 % lines for one parameter."""
    first = next(iter(scans.values()))
    fig, axes = plt.subplots(1, len(first.names), figsize=(4.8 * len(first.names), 4.0), squeeze=False,
                             layout="constrained")
    styles = _styles(list(scans))
    for j, name in enumerate(first.names):
        ax = axes[0, j]
        curves = {label: (np.asarray(scan.axes[j]), np.asarray(scan.q).min(axis=1 - j)) for label, scan in scans.items()}
        _curves(ax, curves, styles, truth.get(name) if truth else None)
        ax.set_xlabel(_axis_label(name, units))
        if j == 0:
            ax.set_ylabel(r"$-2\,\Delta \log L$ (profiled over the other)")
    axes[0, -1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, path)


def _axis_label(name: str, units: Mapping[str, str] | None) -> str:
    """``name [unit]``, a power in the unit typeset ("TeV^-2" → TeV⁻² in mathtext)."""
    unit = re.sub(r"\^\{?(-?\d+)\}?", r"$^{\1}$", (units or {}).get(name, ""))
    return f"{name} [{unit}]" if unit else name


def plot_training(histories: Mapping[str, TrainingHistory], path: str | os.PathLike[str]) -> Path:
    """Training and validation loss per epoch, one column per estimator; where a loss has several terms (ALICES:
    the ratio term and the score term before α), a second row shows each term (train solid, validation dashed,
    log scale)."""
    n = len(histories)
    split = any(len(h.train_parts) > 1 for h in histories.values())
    fig, axes = plt.subplots(2 if split else 1, n, figsize=(4.6 * n, 6.6 if split else 3.8), squeeze=False,
                             sharex="col", layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, (label, h) in enumerate(histories.items()):
        ax = axes[0, column]
        epochs = np.arange(1, len(h.train_loss) + 1)
        ax.plot(epochs, h.train_loss, label="train")
        ax.plot(epochs, h.val_loss, label="validation")
        if h.best_epoch:
            ax.axvline(h.best_epoch, color="grey", ls=":", lw=1, label="kept")
        ax.set_title(label)
        ax.legend(frameon=False, fontsize=8)
        if column == 0:
            ax.set_ylabel("loss")
        if split:
            below = axes[1, column]
            for (term, values), colour in zip(h.train_parts.items(), colours[2:]):
                below.plot(epochs[: len(values)], values, color=colour, label=f"{term} (train)")
                if term in h.val_parts:
                    below.plot(epochs[: len(h.val_parts[term])], h.val_parts[term], color=colour, ls="--",
                               label=f"{term} (validation)")
            if h.train_parts and min(min(v) for v in h.train_parts.values()) > 0:
                below.set_yscale("log")
            below.legend(frameon=False, fontsize=8)
            if column == 0:
                below.set_ylabel("loss terms")
            below.set_xlabel("epoch")
        else:
            ax.set_xlabel("epoch")
    return _save(fig, path)


def plot_correlation(correlation: Mapping[str, Any], path: str | os.PathLike[str], title: str = "correlations") -> Path:
    """The correlation matrix of a fit (``names``, ``matrix``: parameters of interest and nuisance parameters) as a
    heat map from −1 to 1, each cell labelled."""
    names, matrix = list(correlation["names"]), np.asarray(correlation["matrix"], dtype=float)
    size = 1.2 + 0.75 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(matrix[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="correlation")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_weights(weights: Mapping[str, np.ndarray], path: str | os.PathLike[str], unit: str = "") -> Path:
    r"""Distributions of event weights, one curve per label (e.g. the pool at θ_ref and reweighted to a few θ):
    log₁₀|w| with negative weights drawn dashed, and in the legend the effective number of events
    N_eff = (Σ w)² / Σ w² — what a reweighted sample is worth."""
    fig, ax = plt.subplots(figsize=(9.5, 4.2), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    finite = [np.abs(np.asarray(w, dtype=float)) for w in weights.values()]
    positive = np.concatenate([v[v > 0] for v in finite]) if finite else np.array([1.0])
    edges = np.linspace(np.log10(positive.min()), np.log10(positive.max()) + 1e-9, 61)
    for (label, w), colour in zip(weights.items(), colours):
        w = np.asarray(w, dtype=float)
        n_eff = float(w.sum() ** 2 / max((w**2).sum(), 1e-300))
        for part, style, suffix in ((w > 0, "-", ""), (w < 0, "--", ", negative")):
            if part.any():
                ax.hist(np.log10(np.abs(w[part])), bins=list(edges), histtype="step", color=colour, ls=style,
                        label=f"{label}{suffix} (N_eff {n_eff:.3g} of {len(w)})" if not suffix else f"{label}{suffix}")
    ax.set_yscale("log")
    ax.set_xlabel(f"log$_{{10}}$ |event weight|{f' [{unit}]' if unit else ''}")
    ax.set_ylabel("events")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title("event weights")
    return _save(fig, path)


def plot_disagreement(disagreement: Mapping[str, Any], names: Sequence[str], path: str | os.PathLike[str],
                      title: str = "ensemble disagreement", units: Mapping[str, str] | None = None) -> Path:
    """Where an ensemble's members disagree: the spread (standard deviation over members) of −2Δlog L on a grid
    over the 95 % region, as a colour map, under the members' mean 68 % and 95 % contours."""
    xs, ys = (np.asarray(a) for a in disagreement["axes"])
    spread, mean = np.asarray(disagreement["q_spread"]), np.asarray(disagreement["q_mean"])
    fig, ax = plt.subplots(figsize=(6.2, 5), layout="constrained")
    image = ax.pcolormesh(xs, ys, spread.T, shading="nearest", cmap="viridis")
    ax.contour(xs, ys, mean.T, levels=[wilks_threshold("68", 2), wilks_threshold("95", 2)], colors="white",
               linestyles=["-", "--"])
    fig.colorbar(image, ax=ax, label=r"spread of $-2\,\Delta \log L$ over members")
    ax.set_xlabel(_axis_label(names[0], units))
    ax.set_ylabel(_axis_label(names[1], units))
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_pulls(pulls: Mapping[str, tuple[float, float]], path: str | os.PathLike[str]) -> Path:
    """Nuisance-parameter pulls: fitted α̂ with its post-fit error per parameter, against the ±1σ and ±2σ
    bands of the pre-fit constraint N(0, 1).

    Arguments:
        pulls: name → (α̂, σ(α̂)).
    """
    names = list(pulls)
    y = np.arange(len(names))[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(names) + 1.2))
    ax.axvspan(-2, 2, color="gold", alpha=0.5, lw=0)
    ax.axvspan(-1, 1, color="limegreen", alpha=0.5, lw=0)
    ax.axvline(0, color="k", lw=0.8)
    ax.errorbar([pulls[n][0] for n in names], y, xerr=[pulls[n][1] for n in names], fmt="o", color="k", capsize=2)
    ax.set_yticks(y, names)
    ax.set_xlim(-3, 3)
    ax.set_xlabel(r"$(\hat\alpha - \alpha_0) / \Delta\alpha$")
    ax.set_title("nuisance-parameter pulls")
    return _save(fig, path)


def plot_brazil(mu: Sequence[float] | np.ndarray, cls_obs: Sequence[float] | np.ndarray,
                cls_exp: Sequence[Sequence[float]] | np.ndarray, path: str | os.PathLike[str],
                poi: str = "mu", level: float = 0.05) -> Path:
    """CLs against the tested value with the expected median and its ±1σ/±2σ bands.

    Arguments:
        mu: tested values (k,).  cls_obs: observed CLs (k,).  cls_exp: (k, 5) expected CLs at −2σ … +2σ in the
            order hepsbi and pyhf report them (most excluding first).
    """
    mu, cls_exp = np.asarray(mu), np.asarray(cls_exp)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.fill_between(mu, cls_exp[:, 0], cls_exp[:, 4], color="gold", label=r"expected $\pm 2\sigma$")
    ax.fill_between(mu, cls_exp[:, 1], cls_exp[:, 3], color="limegreen", label=r"expected $\pm 1\sigma$")
    ax.plot(mu, cls_exp[:, 2], "k--", label="expected")
    ax.plot(mu, cls_obs, "k-", marker=".", label="observed")
    ax.axhline(level, color="red", lw=1, label=f"CLs = {level}")
    ax.set_xlabel(poi)
    ax.set_ylabel("CLs")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_information_ellipses(informations: Mapping[str, np.ndarray], center: Mapping[str, float],
                              path: str | os.PathLike[str], units: Mapping[str, str] | None = None,
                              level: str = "68") -> Path:
    """The ``level`` confidence ellipse Δθᵀ I Δθ = χ²₂ of each 2×2 Fisher information around ``center`` —
    smaller ellipses mean more information (the Cramér–Rao bound of each analysis)."""
    names = list(center)
    threshold = wilks_threshold(level, 2)
    angle = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    extent = []
    for label, info in informations.items():
        values, vectors = np.linalg.eigh(np.asarray(info, dtype=float))
        if np.any(values <= 0):
            continue  # no information in some direction: an unbounded ellipse
        ellipse = vectors @ (np.sqrt(threshold / values)[:, None] * circle)
        ax.plot(center[names[0]] + ellipse[0], center[names[1]] + ellipse[1], label=_LABELS.get(label, label))
        if values.max() < 1e4 * values.min():  # nearly degenerate ones (the rate alone) would set the scale
            extent.append(np.abs(ellipse).max(axis=1))
    if extent:
        half = 1.15 * np.max(extent, axis=0)
        ax.set_xlim(center[names[0]] - half[0], center[names[0]] + half[0])
        ax.set_ylim(center[names[1]] - half[1], center[names[1]] + half[1])
    ax.plot(center[names[0]], center[names[1]], "k*", ms=9)
    ax.set_xlabel(_axis_label(names[0], units))
    ax.set_ylabel(_axis_label(names[1], units))
    ax.set_title(f"Fisher information, {level} % CL ellipses")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def plot_coverage(statistics: Mapping[str, np.ndarray], dof: int, path: str | os.PathLike[str]) -> Path:
    r"""Coverage against the nominal confidence level, per likelihood: the fraction of toys whose test statistic at
    the truth lies below Wilks' threshold χ²_dof(CL), for CL from 5 % to 99 %, with its binomial 1σ band; a
    calibrated likelihood follows the diagonal (below it: intervals too narrow). Beside it, the empirical
    distribution of t against χ²_dof on a log scale, where the tails show."""
    from scipy import stats

    fig, (ax, tail) = plt.subplots(1, 2, figsize=(10.5, 4.3), layout="constrained")
    levels = np.linspace(0.05, 0.99, 95)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax.plot([0, 1], [0, 1], color="black", lw=1, label="nominal")
    top = max(8.0, max(float(np.quantile(t, 0.99)) for t in statistics.values()))
    for (label, t), colour in zip(statistics.items(), colours):
        t = np.asarray(t, dtype=float)
        covered = np.array([np.mean(t <= stats.chi2.ppf(cl, dof)) for cl in levels])
        error = np.sqrt(np.clip(levels * (1 - levels), 0, None) / len(t))
        name = f"{_LABELS.get(label, label)} ({len(t)} toys)"
        ax.plot(levels, covered, color=colour, label=name)
        ax.fill_between(levels, levels - error, levels + error, color=colour, alpha=0.12, lw=0)
        ordered = np.sort(t)
        tail.step(ordered, 1 - np.arange(len(ordered)) / len(ordered), where="post", color=colour, label=name)
    grid = np.linspace(0, top, 300)
    tail.plot(grid, stats.chi2.sf(grid, dof), "k--", label=rf"$\chi^2_{{{dof}}}$")
    for level in ("68", "95"):
        ax.axvline(float(stats.chi2.cdf(wilks_threshold(level, dof), dof)), color="grey", lw=0.8, ls=":")
        tail.axvline(wilks_threshold(level, dof), color="grey", lw=0.8, ls=":")
    ax.set_xlabel("nominal confidence level")
    ax.set_ylabel("coverage (fraction of toys)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_title("coverage of Wilks intervals")
    tail.set_yscale("log")
    tail.set_xlim(0, top)
    tail.set_xlabel(r"$t(\theta_\mathrm{true}) = -2\Delta\log L$")
    tail.set_ylabel("fraction of toys above t")
    tail.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def plot_closure(rows: Sequence[Mapping[str, object]], parameters: Sequence[str], path: str | os.PathLike[str],
                 title: str = "closure") -> Path:
    r"""Reweighting closure of one learned ratio: per θ (a row of panels), for each observable the reference
    events reweighted by r̂(x | θ) over the events at θ, per bin of equal content at θ, with the ±1σ band of the
    events' weights and χ²/ndf; last panel the classifier's reliability (predicted σ(log r̂) against the observed
    fraction of θ-events; the diagonal is calibrated).

    Arguments:
        rows: :meth:`~hepsbi.inference.WeightedAnalysis.reweighting_closure` rows of one ratio.
        parameters: the parameter names (to label each row's θ).
    """
    n_obs = len(rows[0]["histograms"])  # type: ignore[arg-type]
    fig, axes = plt.subplots(len(rows), n_obs + 1, figsize=(3.0 * (n_obs + 1), 2.4 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        theta = ", ".join(f"{n} = {v:.3g}" for n, v in zip(parameters, row["theta"]))  # type: ignore[call-overload]
        for ax, h in zip(ax_row, row["histograms"]):  # type: ignore[call-overload]
            learned, target, error = (np.asarray(h[k], dtype=float) for k in ("learned", "target", "error"))
            ok = target > 0
            index = np.arange(len(target))[ok]
            ax.axhline(1.0, color="black", lw=0.8)
            ax.fill_between(index, 1 - error[ok] / target[ok], 1 + error[ok] / target[ok], step="mid", color="grey",
                            alpha=0.3, lw=0, label="±1σ (weights)")
            ax.plot(index, learned[ok] / target[ok], "o-", ms=3, lw=1, label=r"reweighted by $\hat r$")
            ax.set_title(f"{h['observable']}: χ²/ndf = {h['chi2']:.1f}/{h['ndf']}", fontsize=9)
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.set_xlabel(f"{h['observable']} bin (equal content at θ)", fontsize=8)
        ax_row[0].set_ylabel(f"learned / true\n{theta}", fontsize=8)
        rel = row["reliability"]
        ax = ax_row[-1]
        ax.plot([0, 1], [0, 1], color="black", lw=0.8)
        ax.plot(rel["predicted"], rel["observed"], "o-", ms=3, lw=1)  # type: ignore[index]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title("reliability", fontsize=9)
        ax.set_xlabel(r"predicted $\sigma(\log \hat r)$", fontsize=8)
        ax.set_ylabel("observed fraction at θ", fontsize=8)
    axes[0][0].legend(frameon=False, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_posterior(samples: Mapping[str, np.ndarray], names: Sequence[str], path: str | os.PathLike[str],
                   truth: Sequence[float] | None = None, bounds: Sequence[tuple[float, float]] | None = None,
                   title: str = "posterior") -> Path:
    r"""Corner plot of posterior draws: the marginal of each parameter on the diagonal, the pairwise 2-D
    histograms below it (contours at the 68 % and 95 % highest-density levels), one colour per sample set
    (e.g. ``{"NPE": …, "exact": …}``), θ_true marked.

    Arguments:
        samples: label → draws (n, p).  names: the p parameter names.  truth: θ_true (p,), drawn as lines.
        bounds: (low, high) per parameter (default: the draws' range).
    """
    p = len(names)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sets = {label: np.asarray(s, dtype=float).reshape(len(s), p) for label, s in samples.items()}
    if bounds is None:
        every = np.concatenate(list(sets.values()))
        bounds = list(zip(every.min(axis=0), every.max(axis=0)))
    edges = [np.linspace(lo, hi, 41) for lo, hi in bounds]
    fig, axes = plt.subplots(p, p, figsize=(2.6 * p + 0.6, 2.6 * p + 0.4), squeeze=False)
    for i in range(p):
        for j in range(p):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            for (label, s), colour in zip(sets.items(), colours):
                if i == j:
                    ax.hist(s[:, i], bins=edges[i], density=True, histtype="step", color=colour, label=label)
                else:
                    h, _, _ = np.histogram2d(s[:, j], s[:, i], bins=[edges[j], edges[i]])
                    levels = _density_levels(h, (0.95, 0.68))
                    if len(set(levels)) == 2:
                        centres = [0.5 * (e[1:] + e[:-1]) for e in (edges[j], edges[i])]
                        ax.contour(centres[0], centres[1], h.T, levels=levels, colors=colour, linewidths=(0.8, 1.4))
            if truth is not None:
                ax.axvline(truth[j], color="black", lw=0.8, ls="--")
                if i != j:
                    ax.axhline(truth[i], color="black", lw=0.8, ls="--")
                    ax.plot(truth[j], truth[i], "k*", ms=6)
            ax.set_xlim(*bounds[j])
            if i != j:
                ax.set_ylim(*bounds[i])
            if i == p - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            if i == j:
                ax.set_yticks([])
    axes[0, 0].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.05, 1.0) if p > 1 else None)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _density_levels(h: np.ndarray, masses: Sequence[float]) -> list[float]:
    """Histogram heights above which the given shares of the counts lie (highest-density regions), increasing."""
    ordered = np.sort(h.ravel())[::-1]
    cumulative = np.cumsum(ordered) / max(float(ordered.sum()), 1.0)
    return [float(ordered[min(int(np.searchsorted(cumulative, m)), len(ordered) - 1)]) for m in masses]


def plot_sbc_ranks(ranks: np.ndarray, draws: int, names: Sequence[str], path: str | os.PathLike[str],
                   p_values: Sequence[float] | None = None, bins: int = 20) -> Path:
    r"""Simulation-based calibration: the histogram of each parameter's ranks (0 … ``draws``) with the band that
    99 % of histograms of uniform ranks stay in (binomial, per bin). A ∪ shape: the posterior is too narrow; ∩: too
    wide; a slope: biased (:func:`hepsbi.diagnostics.sbc`).

    Arguments:
        ranks: (m, p) ranks.  draws: L.  names: the parameters.  p_values: the χ² p-value of each (titles).
    """
    from scipy import stats

    ranks = np.asarray(ranks).reshape(len(ranks), -1)
    m, p = ranks.shape
    bins = int(min(bins, draws + 1))
    edges = np.linspace(0, draws + 1, bins + 1)
    share = np.histogram(np.arange(draws + 1), edges)[0] / (draws + 1)
    low, high = stats.binom.ppf(0.005, m, share), stats.binom.ppf(0.995, m, share)
    fig, axes = plt.subplots(1, p, figsize=(3.4 * p, 3.0), squeeze=False)
    for k, ax in enumerate(axes[0]):
        ax.fill_between(edges, np.append(low, low[-1]), np.append(high, high[-1]), step="post", color="grey",
                        alpha=0.3, lw=0, label="99 % of uniform")
        ax.hist(ranks[:, k], bins=edges, histtype="step", color="C0", lw=1.4, label="ranks")
        ax.set_xlim(0, draws + 1)
        ax.set_xlabel(f"rank of {names[k]} among {draws} draws")
        title = names[k] + (f" (χ² p = {p_values[k]:.2g})" if p_values is not None else "")
        ax.set_title(title, fontsize=10)
    axes[0, 0].set_ylabel(f"simulations (of {m})")
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.suptitle("simulation-based calibration")
    fig.tight_layout()
    return _save(fig, path)


def plot_tarp(alpha: np.ndarray, ecp: np.ndarray, path: str | os.PathLike[str], simulations: int,
              p_value: float | None = None) -> Path:
    r"""TARP expected coverage ECP(α) against the credibility level α, with the band of ±2 binomial standard errors
    about the diagonal (a calibrated posterior's ECP lies on it; below: overconfident; :func:`hepsbi.diagnostics.tarp`)."""
    alpha, ecp = np.asarray(alpha, dtype=float), np.asarray(ecp, dtype=float)
    error = 2 * np.sqrt(alpha * (1 - alpha) / simulations)
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.fill_between(alpha, alpha - error, alpha + error, color="grey", alpha=0.3, lw=0, label="±2σ of calibrated")
    ax.plot([0, 1], [0, 1], color="black", lw=0.8)
    ax.plot(alpha, ecp, color="C0", lw=1.6, label="posterior" + (f" (KS p = {p_value:.2g})" if p_value is not None else ""))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("credibility level α")
    ax.set_ylabel("expected coverage")
    ax.set_title(f"TARP ({simulations} simulations)")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    return _save(fig, path)
