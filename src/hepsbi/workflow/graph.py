r"""The run's stages as a Dask task graph: simulate(chunk) → merge → training data → train (each estimator and
ensemble member) → infer (evaluate, infer, report); a held-out pool (``inference.held_out_events``) is its own
stage, made once and read by every inference group.

Each task is a plain function of the spec (as a dict), the run directory and its inputs' stage directories;
it runs through :func:`hepsbi.workflow.cache.run_stage`, so a finished stage is reused and a rerun resumes.
The same graph runs in-process (the default: Dask's synchronous scheduler, no setup), on local worker
processes, on an existing scheduler or on a batch cluster (:mod:`hepsbi.workflow.placement`). Chunk k draws its own seed, and merges keep chunk
order, so where a task runs never changes what it computes.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any

from dask.callbacks import Callback
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hepsbi.errors import SpecError
from hepsbi.workflow.cache import run_stage, stage_digests, stage_key
from hepsbi.workflow.placement import dask_client

__all__ = ["StageOutputs", "build_and_run"]

#: chunk k of a weighted simulator's pool uses Pythia seed + SEED_STRIDE·k (slices add their index)
SEED_STRIDE = 100



def _spec(document: dict[str, Any]) -> Any:
    from hepsbi.workflow.spec import RunSpec

    return RunSpec.model_validate(document)


def _simulator(document: dict[str, Any]) -> Any:
    from hepsbi.simulators.protocol import is_weighted
    from hepsbi.simulators.registry import build_simulator

    spec = _spec(document)
    sim = build_simulator(spec.simulator.name, spec.simulator.options)
    return spec, sim, is_weighted(sim)


def _chunk_sizes(total: int, chunks: int) -> list[int]:
    sizes = [total // chunks] * chunks
    for i in range(total % chunks):
        sizes[i] += 1
    return sizes


# -- tasks (top-level functions: they travel to Dask workers) ----------------------------------------------
def simulate_chunk(document: dict[str, Any], run_dir: str, k: int, size: int, key: str) -> str:
    """Chunk k: events of a weighted simulator's pool (Pythia seed + 100 k), or rows of training data."""

    def work(tmp: Path) -> None:
        from hepsbi.data.training import TrainingData
        from hepsbi.workflow.inputs import theta_sampler

        spec, sim, weighted = _simulator(document)
        if weighted:
            seed = int(getattr(sim, "seed", 0)) + SEED_STRIDE * k
            sim.generate(size, seed=seed).save(tmp / "events.h5")
        else:
            data = TrainingData.from_simulator(sim, size, theta_sampler(spec, sim), seed=spec.data.seed + k)
            data.save(tmp / "training.h5")

    return str(run_stage(run_dir, f"simulate_{k:04d}", key, work, {"chunk": k, "size": size}))


def held_out(document: dict[str, Any], run_dir: str, key: str) -> str:
    """The held-out pool of ``inference.held_out_events`` (:func:`hepsbi.workflow.inputs.held_out_events`), made
    once for every inference group."""

    def work(tmp: Path) -> None:
        from hepsbi.workflow.inputs import held_out_events

        spec, sim, _ = _simulator(document)
        events = held_out_events(spec, sim)
        assert events is not None  # (the graph asks for this stage only then)
        events.save(tmp / "events.h5")

    return str(run_stage(run_dir, "held_out", key, work, {"events": _spec(document).inference.held_out_events}))


def merge(document: dict[str, Any], run_dir: str, chunks: list[str], key: str) -> str:
    """Chunks in order: the event pool (weighted; streamed, one chunk in memory at a time) or the training
    data (unweighted)."""

    def work(tmp: Path) -> None:
        from hepsbi.data.events import merge_event_files
        from hepsbi.data.training import TrainingData

        paths = [Path(c) for c in chunks]
        if (paths[0] / "events.h5").is_file():
            # the chunks are stage outputs whose checksums were verified: no need to decode them again
            merge_event_files([p / "events.h5" for p in paths], tmp / "events.h5", {"chunks": [p.name for p in paths]},
                              verify=False)
        else:
            parts = [TrainingData.load(p / "training.h5") for p in paths]
            TrainingData.concatenate(parts).save(tmp / "training.h5")

    return str(run_stage(run_dir, "merge", key, work, {"chunks": len(chunks)}, [Path(c).name for c in chunks]))


def training_data(document: dict[str, Any], run_dir: str, merged: str, key: str, name: str = "training",
                  focus: str | None = None, round_: int = 1) -> str:
    """Training data, balanced if asked; for a weighted simulator drawn from the merged pool. A later round
    (``focus``: the previous round's focus stage) draws θ uniformly in its box — from the pool (weighted), or
    simulating the rows afresh with seed data.seed + 1000 (round − 1)."""

    def work(tmp: Path) -> None:
        import json

        from hepsbi.data.events import Events
        from hepsbi.data.training import TrainingData
        from hepsbi.workflow.inputs import UNBALANCED, theta_sampler, trainings

        spec, sim, weighted = _simulator(document)
        box = None
        if focus is not None:
            found = json.loads((Path(focus) / "focus.json").read_text())
            box = (found["low"], found["high"])
        if weighted:
            sim.use_events(Events.load(Path(merged) / "events.h5"))
            data = TrainingData.from_simulator(sim, spec.data.n_samples, theta_sampler(spec, sim, box), seed=spec.data.seed)
        elif box is not None:
            data = TrainingData.from_simulator(sim, spec.data.n_samples, theta_sampler(spec, sim, box),
                                               seed=spec.data.seed + 1000 * (round_ - 1))
        else:
            data = TrainingData.load(Path(merged) / "training.h5")
        if spec.data.balance is not None:
            if any(t.data == UNBALANCED for t in trainings(spec)):
                data.save(tmp / UNBALANCED)
            data = data.balanced(spec.data.balance, spec.data.balance_bins)
        data.save(tmp / "training.h5")
        if weighted and spec.training.sally is not None:
            cfg = spec.training.sally
            local = TrainingData.local(sim, cfg.n_samples, seed=spec.data.seed + 7)
            if spec.data.balance is not None:
                local = local.balanced(spec.data.balance, spec.data.balance_bins)
            local.save(tmp / "local.h5")

    inputs = [Path(merged).name] + ([Path(focus).name] if focus else [])
    return str(run_stage(run_dir, name, key, work, {"round": round_} if focus else {}, inputs))


def focus(document: dict[str, Any], run_dir: str, merged: str, data_dir: str, round_: int, key: str,
          progress: bool) -> str:
    """Training round ``round_`` of the first estimator on its data, scanned on the run's dataset: ``focus.json``
    holds the θ box of the next round (:func:`hepsbi.workflow.infer.focus_box`)."""

    def work(tmp: Path) -> None:
        from hepsbi.data.events import Events
        from hepsbi.data.training import TrainingData
        from hepsbi.estimators.registry import build_estimator
        from hepsbi.files import write_json
        from hepsbi.workflow.infer import focus_box
        from hepsbi.workflow.inputs import prepare, trainings

        spec = _spec(document)
        sim, theta_true = prepare(spec)
        if (Path(merged) / "events.h5").is_file():
            sim.use_events(Events.load(Path(merged) / "events.h5"))  # type: ignore[attr-defined]
        t = trainings(spec)[0]
        estimator = build_estimator(t.method, **(t.options | {"progress": progress, "device": spec.execution.device}))
        estimator.fit(TrainingData.load(Path(data_dir) / t.data))
        write_json(tmp / "focus.json", focus_box(spec, sim, theta_true, estimator, t.label) | {"round": round_})

    return str(run_stage(run_dir, f"focus_{round_}", key, work, {"round": round_}, [Path(data_dir).name]))


def train(document: dict[str, Any], run_dir: str, data_dir: str, stage: str, key: str, progress: bool,
          member: int = 0) -> str:
    """The estimator of training ``stage`` (:func:`hepsbi.workflow.inputs.trainings`) on its training data;
    ensemble ``member`` m trains with seed + m."""

    def work(tmp: Path) -> None:
        from hepsbi.data.training import TrainingData
        from hepsbi.estimators.registry import build_estimator
        from hepsbi.workflow.inputs import trainings

        spec = _spec(document)
        t = {t.stage: t for t in trainings(spec)}[stage]
        options = t.options | {"seed": t.options.get("seed", 0) + member, "progress": progress,
                               "device": spec.execution.device}  # where it trains: not part of the stage key
        build_estimator(t.method, **options).fit(TrainingData.load(Path(data_dir) / t.data)).save(tmp)

    name = stage + (f"_member{member}" if member else "")
    return str(run_stage(run_dir, name, key, work, {"stage": stage, "member": member}, [Path(data_dir).name]))


def posterior(document: dict[str, Any], run_dir: str, key: str, progress: bool) -> str:
    """Neural posterior estimation at one observation (``training.posterior``, :mod:`hepsbi.workflow.posterior`)."""

    def work(tmp: Path) -> None:
        from hepsbi.workflow.posterior import posterior_work

        posterior_work(_spec(document), tmp, progress)

    return str(run_stage(run_dir, "posterior", key, work, {}))


def infer(document: dict[str, Any], run_dir: str, merged: str, estimators: dict[str, list[str]], sally: str | None,
          group: str, name: str, key: str, progress: bool, held: str | None = None) -> str:
    """One group of likelihoods (an estimator, or the comparisons) scanned, profiled, its Fisher information and
    (``held``: the held-out pool's stage) the information it keeps, see :mod:`hepsbi.workflow.infer`."""
    from hepsbi.workflow.infer import infer_stage

    return str(infer_stage(_spec(document), run_dir, merged, estimators, sally, group, name, key, progress, held))


def report(document: dict[str, Any], run_dir: str, merged: str, estimators: dict[str, list[str]], sally: str | None,
           groups: list[str], key: str, progress: bool, posterior: str | None = None) -> str:
    """Evaluate and report (results.json, plots/) from the inference groups (and the posterior stage's summary)."""
    from hepsbi.workflow.infer import report_stage

    return str(report_stage(_spec(document), run_dir, merged, estimators, sally, groups, key, progress, posterior))


# -- the graph -----------------------------------------------------------------------------------------------
#: the roles of the graph whose tasks form a list (the others: one task, or label → members)
LISTS = ("infer", "rounds", "focus")


class StageOutputs(dict):
    """Stage directories by role: ``chunks``, ``merged``, ``rounds`` and ``focus`` (the earlier training rounds'
    data and the boxes they found), ``training``, ``estimators`` (label → member dirs), ``sally``, ``posterior``
    (neural posterior estimation, where the spec asks for it), ``held_out`` (the
    second pool, where the spec asks for one), ``infer`` (one per estimator, then the comparisons), ``report``."""

    def directories(self) -> list[str]:
        """The names of every stage directory of this run."""
        paths = [*self["chunks"], self["merged"], *self.get("rounds", []), *self.get("focus", []), self["training"],
                 *(d for dirs in self["estimators"].values() for d in dirs),
                 self.get("sally"), self.get("posterior"), self.get("held_out"), *self.get("infer", []),
                 self.get("report")]
        return sorted(Path(p).name for p in paths if p)


def _graph(spec: Any, run_dir: str, sim: Any, progress: bool) -> dict[str, Any]:
    """The delayed tasks and their keys (the key of a stage covers its configuration and its inputs' keys)."""
    from dask import delayed

    from hepsbi.simulators.protocol import is_weighted
    from hepsbi.workflow.inputs import UNBALANCED, trainings

    document = spec.model_dump(mode="json")
    chunks = spec.execution.chunks
    weighted = is_weighted(sim)
    total = int(sim.n_events) if weighted else spec.data.n_samples  # a weighted simulator's pool size
    if total < chunks:
        raise SpecError(f"execution.chunks: {chunks} chunks for {total} events; use at most {total}")
    base = {"simulator": document["simulator"]} | ({} if weighted else {"data": document["data"]})
    inputs = getattr(sim, "input_files", None)  # a simulator that reads files: a changed file is a new pool
    if inputs:
        base["input_files"] = inputs
    sizes = _chunk_sizes(total, chunks)
    chunk_keys = [stage_key("simulate", base | {"chunk": k, "of": chunks, "size": n}) for k, n in enumerate(sizes)]
    chunk_tasks = [delayed(simulate_chunk, pure=False)(document, run_dir, k, n, key)
                   for k, (n, key) in enumerate(zip(sizes, chunk_keys))]
    merge_key = stage_key("merge", {}, chunk_keys)
    merged = delayed(merge, pure=False)(document, run_dir, chunk_tasks, merge_key)
    planned = trainings(spec)
    unbalanced = any(t.data == UNBALANCED for t in planned)
    data_config = {"data": document["data"], "sally": document["training"]["sally"], "unbalanced": unbalanced}
    rounds = spec.training.rounds
    focus_tasks, earlier_data, focus_key, focused = [], [], "", None
    for r in range(1, rounds + 1):
        last = r == rounds
        if rounds == 1:  # (the key of a run without rounds is what it always was)
            data_key = stage_key("training", data_config, [merge_key])
        else:
            data_key = stage_key("training", data_config | {"round": r}, [merge_key, *([focus_key] if r > 1 else [])])
        data = delayed(training_data, pure=False)(document, run_dir, merged, data_key,
                                                  "training" if last else f"training_{r}", focused, r)
        if not last:
            earlier_data.append(data)
            first = planned[0]
            focus_key = stage_key("focus", {"method": first.method, "options": first.options, "round": r,
                                            "width": spec.training.focus_width, "inference": document["inference"]},
                                  [data_key])
            focused = delayed(focus, pure=False)(document, run_dir, merged, data, r, focus_key, progress)
            focus_tasks.append(focused)
    estimators, estimator_keys = {}, []
    sally, sally_key = None, None
    for t in planned:
        config = {"method": t.method, "options": t.options}
        keys = [stage_key("train", config | ({"member": m} if m else {}), [data_key]) for m in range(t.members)]
        tasks = [delayed(train, pure=False)(document, run_dir, data, t.stage, key, progress, m) for m, key in enumerate(keys)]
        if t.stage == "train_sally":  # the local score estimator: an input of the comparisons
            if weighted:
                sally, sally_key = tasks[0], keys[0]
            continue
        estimator_keys.append(keys)
        estimators[t.label] = tasks
    member_keys = [key for keys in estimator_keys for key in keys]
    posterior_task, posterior_keys = None, []
    if spec.training.posterior is not None:  # independent of the ratio chain: its own simulations
        posterior_key = stage_key("posterior", {"simulator": document["simulator"],
                                                "posterior": document["training"]["posterior"],
                                                "inference": {k: document["inference"][k] for k in ("theta_true", "seed")},
                                                "plots": document["report"]["plots"]})
        posterior_task = delayed(posterior, pure=False)(document, run_dir, posterior_key, progress)
        posterior_keys = [posterior_key]
    inference = {k: document[k] for k in ("name", "inference")}
    held, held_keys = None, []
    if weighted and spec.inference.held_out_events:
        held_keys = [stage_key("held_out", {"simulator": document["simulator"],
                                            "events": spec.inference.held_out_events})]
        held = delayed(held_out, pure=False)(document, run_dir, held_keys[0])
    groups, group_keys = [], []
    for i, (label, members) in enumerate(estimators.items()):
        group_keys.append(stage_key("infer", inference | {"group": i}, [merge_key, *estimator_keys[i], *held_keys]))
        groups.append(delayed(infer, pure=False)(document, run_dir, merged, {label: members}, None, label, f"infer_{i}",
                                                 group_keys[-1], progress, held))
    group_keys.append(stage_key("infer", inference | {"group": "comparisons"},
                                [merge_key, *([sally_key] if sally_key else []), *held_keys]))
    groups.append(delayed(infer, pure=False)(document, run_dir, merged, {}, sally, "comparisons", "infer_comparisons",
                                             group_keys[-1], progress, held))
    report_key = stage_key("report", inference | {"report": document["report"]},
                           [merge_key, *member_keys, *([sally_key] if sally_key else []), *group_keys, *posterior_keys])
    reported = delayed(report, pure=False)(document, run_dir, merged, estimators, sally, groups, report_key, progress,
                                           posterior_task)
    return {"chunks": chunk_tasks, "merged": merged, "rounds": earlier_data, "focus": focus_tasks, "training": data,
            "estimators": estimators, "sally": sally, "posterior": posterior_task, "held_out": held, "infer": groups,
            "report": reported}


def build_and_run(spec: Any, run_dir: str | os.PathLike[str], progress: bool = True, infer: bool = True) -> StageOutputs:
    """Run (or resume) simulate → merge → training data → train (→ infer) and return the stage directories;
    copies the training data, models and (with ``infer``) results.json and plots into the run directory's
    usual places."""
    import dask
    from distributed import as_completed

    from hepsbi.simulators.registry import build_simulator

    run_dir = str(Path(run_dir).resolve())
    graph = _graph(spec, run_dir, build_simulator(spec.simulator.name, spec.simulator.options), progress)
    # every task in one flat list (chunks first), so progress can count them as they finish
    roles: list[tuple[str, Any]] = [("merged", None)]
    roles += [(role, r) for r in range(len(graph["focus"])) for role in ("rounds", "focus")]
    roles += [("training", None)]
    roles += [("estimators", (label, m)) for label, members in graph["estimators"].items() for m in range(len(members))]
    roles += [("sally", None)] if graph["sally"] is not None else []
    roles += [("posterior", None)] if graph["posterior"] is not None and infer else []  # (coverage: not needed)
    roles += [("held_out", None)] if graph["held_out"] is not None and infer else []
    roles += [("infer", g) for g in range(len(graph["infer"]))] + [("report", None)] if infer else []

    def task(role: str, where: Any) -> Any:
        if where is None:
            return graph[role]
        return graph[role][where] if role in LISTS else graph[role][where[0]][where[1]]

    tasks = list(graph["chunks"]) + [task(r, k) for r, k in roles]
    with dask_client(spec) as client, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not progress, transient=False,
    ) as bar:
        task_id = bar.add_task(f"stages ({spec.execution.chunks} simulation chunks)", total=len(tasks))
        if client is None:
            with _Advance(bar, task_id, len(tasks)):
                values = dask.compute(*tasks, scheduler="synchronous")
        else:
            futures = client.compute(tasks)
            for _ in as_completed(futures):
                bar.advance(task_id)
            values = client.gather(futures)
    done = dict(zip(range(len(tasks)), values))
    out = StageOutputs(merged=None, training=None, estimators={}, sally=None, posterior=None, held_out=None, infer=[],
                       report=None,
                       rounds=[],
                       focus=[], chunks=[done[i] for i in range(len(graph["chunks"]))])
    for i, (role, where) in enumerate(roles, start=len(graph["chunks"])):
        if where is None:
            out[role] = done[i]
        elif role in LISTS:
            out[role].append(done[i])
        else:
            out[role].setdefault(where[0], []).append(done[i])  # an estimator's ensemble members, in order
    out["published"] = _publish(Path(run_dir), out)
    return out


class _Advance(Callback):
    """Dask's local-scheduler callback that moves a rich progress bar as tasks of the graph finish."""

    def __init__(self, bar: Progress, task_id: Any, total: int):
        super().__init__()
        self.bar, self.task_id, self.total = bar, task_id, total

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if isinstance(result, str) and "/stages/" in result:  # a stage finished (not an argument task)
            self.bar.advance(self.task_id)


def _publish(run_dir: Path, out: StageOutputs) -> dict[str, str]:
    """Copies of the stage outputs where a run directory has always had them; every target is checked to lie
    inside the run directory (:func:`hepsbi.files.inside`). Returns the SHA-256 of every published file by its
    path relative to the run directory (``hepsbi status`` reports files edited since)."""
    from hepsbi.files import atomic_path, inside

    published: dict[str, str] = {}
    digests = functools.cache(stage_digests)  # each stage's manifest read once

    def copy(stage: Path, name: Path, relative: Path) -> None:
        with atomic_path(inside(run_dir, relative)) as tmp:
            shutil.copyfile(stage / name, tmp)
        published[relative.as_posix()] = digests(stage)[str(name)]  # hashed when the stage was sealed

    copy(Path(out["training"]), Path("training.h5"), Path("data", "training.h5"))
    for r, directory in enumerate(out.get("focus", []), start=1):  # the boxes of the training rounds
        copy(Path(directory), Path("focus.json"), Path("data", f"focus_{r}.json"))
    merged = Path(out["merged"])
    if (merged / "events.h5").is_file():
        copy(merged, Path("events.h5"), Path("data", "events.h5"))
    models = {label: dirs[0] for label, dirs in out["estimators"].items()}
    models |= {f"{label}/member{m}": d for label, dirs in out["estimators"].items() for m, d in enumerate(dirs) if m}
    models |= {"sally": out["sally"]} if out.get("sally") else {}
    for label, directory in models.items():
        for f in Path(directory).iterdir():
            if f.name not in ("manifest.json", "stage.log"):
                copy(Path(directory), Path(f.name), Path("models", label, f.name))
    if out.get("posterior"):  # the model, posterior.json and .h5 at the top, its plots beside the others
        directory = Path(out["posterior"])
        for f in sorted(directory.rglob("*")):
            if f.is_file() and f.name not in ("manifest.json", "stage.log"):
                relative = f.relative_to(directory)
                target = Path("models", "posterior", *relative.parts[1:]) if relative.parts[0] == "model" else relative
                copy(directory, relative, target)
    if out.get("report"):
        directory = Path(out["report"])
        for f in sorted(directory.rglob("*")):
            if f.is_file() and f.name not in ("manifest.json", "stage.log", "timings.json"):
                copy(directory, f.relative_to(directory), f.relative_to(directory))
    return published
