"""One test per property, swept over every method of the estimator registry (as zuko tests every flow): output
shapes, gradients reach every parameter, seeded determinism, save/load round trip — and the embedding slot."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from hepsbi import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators import METHODS, LogRatioEstimator, build_estimator, load_estimator
from hepsbi.estimators.registry import method_table
from hepsbi.simulators import MultiParameterGaussian

SMALL = {"hidden": (16, 16), "epochs": 2, "progress": False, "batch_size": 64}


@pytest.fixture(scope="module")
def data(morphing_data) -> dict[str, TrainingData]:
    sim = MultiParameterGaussian()
    return {"ratio": TrainingData.from_simulator(sim, 400, seed=5), "local": TrainingData.local(sim, 300, seed=6),
            "morphing": morphing_data}


def data_for(method: str, data: dict[str, TrainingData]) -> TrainingData:
    return {"sally": data["local"], "morphing": data["morphing"]}.get(method, data["ratio"])


def outputs(est, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What an estimator of any kind returns for events x (n, d_x), at a θ inside its space."""
    theta = torch.tensor([0.3, -0.2][: est.space.dim])
    if isinstance(est, LogRatioEstimator):
        return {"log_ratio": est.log_ratio(x, theta), "of_theta": est.log_ratio_of_theta(x)(theta.double()),
                "score": est.score(x, theta)}
    return {"score": est.score(x)}


@pytest.mark.parametrize("method", METHODS)
def test_output_shapes(method, data):
    d = data_for(method, data)
    est = build_estimator(method, **SMALL).fit(d)
    got = outputs(est, d.x[:7])
    assert got["score"].shape == (7, d.space.dim)
    if "log_ratio" in got:
        assert got["log_ratio"].shape == (7,) and got["of_theta"].shape == (7,)
        assert got["of_theta"].dtype == torch.float64
        torch.testing.assert_close(got["of_theta"].float(), got["log_ratio"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_every_parameter(method, data):
    est = build_estimator(method, **SMALL).initialise(data_for(method, data))
    est.loss(data_for(method, data)).backward()
    for name, p in est.model.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), f"{method}: no gradient reaches {name}"


@pytest.mark.parametrize("method", METHODS)
def test_seeded_determinism(method, data):
    d = data_for(method, data)
    a, b = (build_estimator(method, seed=3, **SMALL).fit(d) for _ in range(2))
    c = build_estimator(method, seed=4, **SMALL).fit(d)
    x = d.x[:50]
    for key, value in outputs(a, x).items():
        assert torch.equal(value, outputs(b, x)[key]), f"{method}: {key} differs for the same seed"
        assert not torch.equal(value, outputs(c, x)[key]), f"{method}: {key} ignores the seed"


@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip(method, data, tmp_path):
    d = data_for(method, data)
    est = build_estimator(method, **SMALL).fit(d)
    est.save(tmp_path / method)
    loaded = load_estimator(tmp_path / method)
    assert type(loaded) is type(est) and loaded.hidden == est.hidden and loaded.space == est.space
    assert loaded.history.train_loss == est.history.train_loss
    x = d.x[:20]
    for key, value in outputs(est, x).items():
        assert torch.equal(outputs(loaded, x)[key], value), f"{method}: {key} changed by save/load"


class MeanPool(nn.Module):
    """A deep-sets encoder: φ per element, mean over the set, (n, m, d) → (n, 8)."""

    out_features = 8

    def __init__(self, d: int):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(d, 8), nn.SiLU(), nn.Linear(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi(x).mean(dim=1)


def set_valued(data: TrainingData, m: int = 3) -> TrainingData:
    """Each event as a set of m copies of its observables with small jitter: x (n, m, 5)."""
    gen = torch.Generator().manual_seed(0)
    x = data.x.unsqueeze(1) + 0.01 * torch.randn(len(data), m, data.x.shape[1], generator=gen, dtype=torch.float64)
    return TrainingData(x, data.theta, data.y, data.log_r_xz, data.t_xz, data.weights, data.space,
                        list(data.observable_names))


@pytest.mark.parametrize("method", ["alices", "sally"])
def test_an_embedding_plugs_in_without_touching_the_estimator(method, data, tmp_path):
    d = set_valued(data_for(method, data))
    est = build_estimator(method, embedding=MeanPool(5), **SMALL).initialise(d)
    est.loss(d).backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in est.model.embedding.parameters())
    est.fit(d).save(tmp_path / "m")
    x = d.x[:6]
    with pytest.raises(EstimatorError, match="MeanPool.*embedding="):
        load_estimator(tmp_path / "m")
    loaded = load_estimator(tmp_path / "m", embedding=MeanPool(5))
    for key, value in outputs(est, x).items():
        assert value.shape[0] == 6 and torch.equal(outputs(loaded, x)[key], value)
    with pytest.raises(EstimatorError, match=r"x must have shape \(n, 3, 5\)"):
        est.score(torch.zeros(2, 4, 5)) if method == "sally" else est.log_ratio(torch.zeros(2, 4, 5), torch.zeros(2))


def test_readme_table_of_methods_is_the_registry():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| ([\w, —]+) \| .*?(arXiv:[\d.]+) \|$", readme, flags=re.M)
    assert [(m, k, n.strip(), ref) for m, k, n, ref in rows] == [(r[0], r[1], r[2], r[4]) for r in method_table()]


def test_files_of_earlier_versions_load(data, tmp_path):
    """estimator.json written before the contract had no x_shape or embedding: such files load as 2-D
    estimators without an embedding and give the same numbers."""
    import json

    est = build_estimator("alices", **SMALL).fit(data["ratio"])
    est.save(tmp_path / "old")
    meta_file = tmp_path / "old" / "estimator.json"
    meta = json.loads(meta_file.read_text())
    del meta["x_shape"], meta["embedding"]
    meta_file.write_text(json.dumps(meta))
    loaded = load_estimator(tmp_path / "old")
    x = data["ratio"].x[:9]
    assert torch.equal(loaded.log_ratio(x, torch.tensor([0.1, 0.1])), est.log_ratio(x, torch.tensor([0.1, 0.1])))


ONE_PER_KIND = list({METHODS[m].kind: m for m in reversed(list(METHODS))}.values())


@pytest.mark.parametrize("method", [*ONE_PER_KIND, "revert"])  # revert: a signed output, log taken in the graph
def test_onnx_and_torch_export_give_the_estimators_numbers(method, data, tmp_path):
    """Every estimator kind exported as ONNX (run with onnxruntime) and as a torch.export program reproduces the
    estimator's own log r̂ (or SALLY's score) to 1e-5, for a batch size it was not exported with; the sidecar says
    what the file computes."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="pip install 'hepsbi[export]'")
    pytest.importorskip("onnxscript", reason="pip install 'hepsbi[export]'")
    from hepsbi.estimators.export import check_onnx, export_onnx, export_program, read_sidecar

    d = data_for(method, data)
    est = build_estimator(method, **SMALL).fit(d)
    x = d.x[:37].float()
    theta = torch.tensor([0.3, -0.2][: est.space.dim])
    want = outputs(est, x)["log_ratio" if isinstance(est, LogRatioEstimator) else "score"].float()
    feeds = {"x": x.numpy()} | ({"theta": theta.expand(37, -1).float().numpy()} if want.dim() == 1 else {})
    onnx_file = export_onnx(est, tmp_path / f"{method}.onnx")
    got = onnxruntime.InferenceSession(str(onnx_file)).run(None, feeds)[0]
    tolerance = 5e-5 if est.kind == "DensityEstimator" else 1e-5  # a flow's two float32 log-densities, subtracted
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=tolerance)
    assert check_onnx(est, onnx_file) < tolerance
    sidecar = read_sidecar(onnx_file)
    assert sidecar["kind"] == est.kind and sidecar["observables"] == list(d.observable_names)
    assert list(sidecar["inputs"]) == list(feeds) and sidecar["output"]["name"] in ("log_r", "score")
    program = torch.export.load(str(export_program(est, tmp_path / f"{method}.pt2")))
    got = program.module()(*(torch.from_numpy(v) for v in feeds.values()))
    torch.testing.assert_close(got, want, rtol=0, atol=tolerance)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("method", METHODS)
def test_cuda_training_and_evaluation_agree_with_the_cpu(method, data, tmp_path):
    """Every method trains on the GPU (device="cuda") from the same seed, split and batches as on the CPU, and gives
    its numbers to float32 rounding; results come back where the input was (numpy: arrays, a CUDA tensor: on the
    GPU); a saved GPU estimator loads on the CPU with the same numbers."""
    d = data_for(method, data)
    cpu = build_estimator(method, **SMALL).fit(d)
    gpu = build_estimator(method, device="cuda", **SMALL).fit(d)
    assert gpu.device.type == "cuda" and cpu.device.type == "cpu"
    x = d.x[:40]
    want, got = outputs(cpu, x), outputs(gpu, x)
    for key, value in want.items():
        assert got[key].device.type == "cpu", f"{method}: {key} did not come back to the CPU"
        torch.testing.assert_close(got[key], value, rtol=1e-3, atol=1e-3, msg=f"{method}: {key} differs on the GPU")
    on_gpu = outputs(gpu, x.cuda())
    assert all(v.device.type == "cuda" for v in on_gpu.values())
    gpu.save(tmp_path / "gpu")
    loaded = load_estimator(tmp_path / "gpu")
    assert loaded.device.type == "cpu"
    for key, value in outputs(loaded, x).items():
        torch.testing.assert_close(value, got[key], rtol=1e-5, atol=1e-5)
    assert load_estimator(tmp_path / "gpu", device="auto").device.type == "cuda"


@pytest.mark.parametrize("method", ONE_PER_KIND)
def test_device_option_on_the_cpu(method, data, tmp_path):
    """device="cpu" and "auto" (without a GPU) train exactly as the default does; to() and load(device=) place the
    network; a numpy input gives numpy back."""
    d = data_for(method, data)
    default = build_estimator(method, **SMALL).fit(d)
    explicit = build_estimator(method, device="cpu", **SMALL).fit(d)
    x = d.x[:20]
    for key, value in outputs(default, x).items():
        assert torch.equal(outputs(explicit, x)[key], value)
    if not torch.cuda.is_available():
        auto = build_estimator(method, device="auto", **SMALL).fit(d)
        assert auto.device.type == "cpu"
        assert torch.equal(outputs(auto, x)["score"], outputs(default, x)["score"])
    default.save(tmp_path / "m")
    assert load_estimator(tmp_path / "m", device="cpu").to("cpu").device.type == "cpu"
    got = default.score(x.numpy()) if method == "sally" else default.log_ratio(x.numpy(), [0.3, -0.2][: d.space.dim])
    assert not isinstance(got, torch.Tensor)


def test_device_names_are_checked():
    with pytest.raises(EstimatorError, match="training option device must be cpu, cuda, cuda:N or auto.*'gpu'"):
        build_estimator("alices", device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_missing_gpu_is_named_before_training(data, tmp_path):
    est = build_estimator("alices", device="cuda", **SMALL)
    with pytest.raises(EstimatorError, match="training option device is 'cuda', but torch sees no CUDA device"):
        est.fit(data["ratio"])
    assert est.model is None  # nothing was built: the error comes before any work
    build_estimator("alices", **SMALL).fit(data["ratio"]).save(tmp_path / "m")
    with pytest.raises(EstimatorError, match="device is 'cuda:1', but torch sees no CUDA device"):
        load_estimator(tmp_path / "m", device="cuda:1")
