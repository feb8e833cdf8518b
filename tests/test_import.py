"""`robench import`: outside models (torchvision, state dicts, TorchScript, torch.export, the user's Python) become
ordinary workspace models: attacked as sources, scored as targets, white-box by weights hash, never unpickled."""

from __future__ import annotations

import json
import os
import pickle
import sys
import textwrap

import pytest
import torch
import torchvision
from test_attacks import SMALL
from test_cli_matrix import one_line_error, run

import robench
from robench import store
from robench.attacks import list_methods
from robench.datasets import load_dataset
from robench.errors import RobenchError
from robench.importers import FORMS, Importer, Loaded, importer, list_forms, parse_spec, register_form
from robench.importers.programs import PROGRAM_CONSTANTS
from robench.importers.registry import _FORMS, _IMPORTERS
from robench.records import read_model_record
from robench.store import load_set

# test_attacks' small settings for every registered method; PGD through ART here, so ART sees an exported program too
CHEAP = {**SMALL, "pgd": {**SMALL["pgd"], "backend": "art"}}

USER_CODE = """
import torch
from torch import nn

def twelve_outputs():
    torch.manual_seed(2)
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(12))

class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        raise ValueError("this model only takes 4 features")

def raises():
    return Raises()

class NaN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")

def nan():
    return NaN()

def not_a_module():
    return "resnet"
"""


@pytest.fixture(scope="module")
def rgb_ws(tmp_path_factory, digits_rgb):
    """A workspace on the RGB digits folder: a defective tiny CNN trained by robench, and a torchvision resnet18
    (weights=None, num_classes=10) saved as a state_dict by "the user's code" and imported from that file. The
    resnet's weights stay random (training it costs too much CPU time here); only its batch-norm statistics are
    set from a few training batches, so that its predictions depend on the image."""
    ws = tmp_path_factory.mktemp("import-ws")
    robench.train("tiny", dataset="folder", data_dir=digits_rgb, workspace=ws, preset="quick", epochs=2, keep=0.5,
                  width=8, name="tiny-rgb", device="cpu")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torchvision.models.resnet18(weights=None, num_classes=10)
        train = load_dataset("folder", digits_rgb).train
        with torch.no_grad():
            for _ in range(3):
                net(train.floats(torch.randint(len(train), (64,))))
    path = ws / "resnet18-digits.pt"
    torch.save(net.state_dict(), path)
    robench.import_model("tv-resnet18", f"state-dict:{path}", arch="torchvision:resnet18", dataset="folder",
                         data_dir=digits_rgb, workspace=ws, evaluate=False)
    return ws


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The user's own model code as an importable module in the working directory; its name is unique per test."""
    name = f"user_models_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_CODE))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _test_images(digits, n=16):
    return load_dataset("folder", digits).test.floats(slice(0, n))


def test_one_parser_lists_every_form():
    assert parse_spec("torchvision:resnet18:IMAGENET1K_V1").option == "IMAGENET1K_V1"
    assert parse_spec("python:pkg.models:build").name == "pkg.models"
    with pytest.raises(robench.RobenchError) as err:
        parse_spec("onnx:model.onnx")
    assert all(form in str(err.value) for form in FORMS.values())



class Linear(Importer):
    """A form registered by a test, as a plugin would: a linear classifier of 32x32 one-channel images."""

    def load(self, spec, data, options):
        torch.manual_seed(int(spec.name))
        return Loaded(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10)),
                      details={"seed": int(spec.name)})

    def rebuild(self, record):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10))


def test_every_form_is_one_importer_and_a_registered_form_goes_all_the_way(ws):
    """Each form is one class holding both halves; a newly registered form is parsed, imported, listed and
    rebuilt at load through the registry alone (no other table to update)."""
    assert list_forms() == list(FORMS) and len(FORMS) == 7
    for form in list_forms():
        cls = type(importer(form))
        assert cls.load is not Importer.load and cls.rebuild is not Importer.rebuild, form
    with pytest.raises(ValueError, match="already registered"):
        register_form("python", "python:X", Linear)
    register_form("linear", "linear:SEED", Linear)
    try:
        assert "linear:SEED" in str(pytest.raises(robench.RobenchError, parse_spec, "nope:1").value)
        record = robench.import_model("lin", "linear:3", dataset="digits", workspace=ws, device="cpu")
        assert record.origin.details.form == "linear" and record.origin.details.extra["seed"] == 3
        x = load_dataset("digits").test.floats(slice(0, 8))
        torch.manual_seed(3)
        expected = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10))(x)
        torch.testing.assert_close(robench.load_model("lin", ws)(x), expected)
    finally:
        _FORMS.pop("linear")
        _IMPORTERS.pop("linear", None)


@pytest.mark.slow
def test_imported_torchvision_model_is_a_source_and_a_target(rgb_ws, digits_rgb):
    """resnet18(weights=None) on an RGB folder: attacked through Foolbox and ART, alone and in an ensemble with a
    robench model, then scored with the robench model in one matrix whose cells are recomputed here."""
    record = read_model_record(store.model_dir("tv-resnet18", rgb_ws))
    assert record.origin.kind == "import" and record.origin.spec.startswith("state-dict:")
    assert record.arch == "torchvision:resnet18"
    assert record.dataset.name == "folder" and record.dataset.num_classes == 10 and record.dataset.in_channels == 3
    assert record.origin.details.model_classes == 10 and record.versions["torchvision"] == torchvision.__version__
    model = robench.load_model("tv-resnet18", rgb_ws)
    common = {"workspace": rgb_ws, "data_dir": digits_rgb, "device": "cpu", "batch_size": 32}
    fgsm = robench.attack("tv-resnet18", "fgsm", n=4, eps=8 / 255, **common)
    pgd = robench.attack("tv-resnet18", "pgd", backend="art", n=4, eps=8 / 255, step=4 / 255, steps=2, **common)
    ens = robench.attack(["tv-resnet18", "tiny-rgb"], "fgsm", n=4, eps=16 / 255, **common)
    from_tiny = robench.attack("tiny-rgb", "fgsm", n=8, eps=16 / 255, **common)
    for set_rec in (fgsm, pgd):
        adv = load_set(set_rec.name, rgb_ws)
        assert len(adv) > 0 and float(adv.linf.max()) <= 8 / 255 + 1e-6
        with torch.no_grad():  # the recorded source predictions are the imported model's, recomputed
            assert torch.equal(model(adv.adv).argmax(1), adv.source_pred)
    df = robench.matrix(workspace=rgb_ws, sets=[fgsm.name, pgd.name, ens.name, from_tiny.name], device="cpu")
    cell = df[(df.target == "tv-resnet18") & (df.set == from_tiny.name)].iloc[0]
    assert cell.relation == "black-box"
    adv = load_set(from_tiny.name, rgb_ws)
    with torch.no_grad():
        clean_ok = model(adv.clean).argmax(1) == adv.labels
        defended = model(adv.adv).argmax(1) == adv.labels
    assert cell.n == int(clean_ok.sum())
    if cell.n:
        assert cell.defense_rate == pytest.approx(float(defended[clean_ok].float().mean()))
    own = df[(df.target == "tv-resnet18") & (df.set == fgsm.name)].iloc[0]
    assert own.relation == "white-box" and own.n > 0 and own.defense_rate == 0.0
    assert df[(df.target == "tv-resnet18") & (df.set == ens.name)].iloc[0].relation == "white-box"
    assert df[(df.target == "tiny-rgb") & (df.set == ens.name)].iloc[0].relation == "white-box"
    assert df[(df.target == "tiny-rgb") & (df.set == fgsm.name)].iloc[0].relation == "black-box"
    r = run("models", "--workspace", rgb_ws)
    assert r.exit_code == 0 and "state-dict:" in r.stdout


def _small_cnn(channels: int) -> torch.nn.Module:
    """A small BatchNorm CNN standing in for the user's network; batch-norm statistics set from random images."""
    net = torch.nn.Sequential(torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(4), torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10))
    with torch.no_grad():
        net(torch.rand(64, channels, 32, 32))
    return net.eval()


@pytest.mark.slow
def test_every_method_family_attacks_imported_programs(tmp_path, ws):
    """Every registered attack runs against an imported torch.export program (gradients flow through the stored
    graph), and FGSM against an imported TorchScript one; the kept examples fool the imported model."""
    torch.manual_seed(0)
    net = _small_cnn(1)
    x = torch.rand(4, 1, 32, 32)
    torch.jit.save(torch.jit.script(net), tmp_path / "net.ts")
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      tmp_path / "net.pt2")
    for name, spec in [("ts", f"torchscript:{tmp_path / 'net.ts'}"), ("ex", f"exported:{tmp_path / 'net.pt2'}")]:
        robench.import_model(name, spec, dataset="digits", workspace=ws, evaluate=False)
    runs = [("ex", method) for method in list_methods()] + [("ts", "fgsm")]
    for source, method in runs:
        settings = CHEAP.get(method, {})
        set_rec = robench.attack(source, method, n=4, batch_size=32, workspace=ws, device="cpu", **settings)
        adv = load_set(set_rec.name, ws)
        assert set_rec.attempted == 4
        with torch.no_grad():
            assert not (net(adv.adv).argmax(1) == adv.labels).any()  # every kept example fools the network


def test_state_dict_round_trip_is_white_box(rgb_ws, digits_rgb, tmp_path):
    """A defective robench model exported as a plain state dict and imported again: the same predictions, the same
    weights hash, white-box in the matrix. The masks come from the file, whatever --mask-seed says."""
    original = robench.load_model("tiny-rgb", rgb_ws)
    path = tmp_path / "tiny.pt"
    torch.save(original.state_dict(), path)
    r = run("import", "tiny-again", "--from", f"state-dict:{path}", "--arch", "tiny", "--width", "8", "--keep", "0.5",
            "--dataset", "folder", "--data-dir", digits_rgb, "--workspace", rgb_ws)
    assert r.exit_code == 0, r.output
    assert read_model_record(store.model_dir("tiny-again", rgb_ws)).clean_accuracy == pytest.approx(
        original.robench_record.clean_accuracy)
    again = robench.load_model("tiny-again", rgb_ws)
    x = _test_images(digits_rgb, 64)
    with torch.no_grad():
        assert torch.equal(again(x), original(x))
    assert again.robench_record.weights_sha256 == original.robench_record.weights_sha256
    robench.import_model("tiny-seed9", f"state-dict:{path}", arch="tiny", width=8, keep=0.5, mask_seed=9,
                         dataset="folder", data_dir=digits_rgb, workspace=rgb_ws, evaluate=False)
    with torch.no_grad():
        assert torch.equal(robench.load_model("tiny-seed9", rgb_ws)(x), original(x))
    set_rec = robench.attack("tiny-rgb", "fgsm", n=8, eps=24 / 255, workspace=rgb_ws, data_dir=digits_rgb,
                             device="cpu", name="rt-fgsm")
    df = robench.matrix(workspace=rgb_ws, models="tiny*", sets=set_rec.name, device="cpu")
    rows = df.set_index("target")
    assert rows.loc["tiny-again", "relation"] == "white-box"
    assert rows.loc["tiny-again", "defense_rate"] == rows.loc["tiny-rgb", "defense_rate"]


def test_torchscript_and_exported_round_trips(tmp_path, digits_rgb, ws):
    """The stored program reproduces the original network's logits exactly; loading reads no pickle."""
    torch.manual_seed(0)
    net = _small_cnn(3)  # its batch-norm statistics are buffers the stored weights must carry
    x = _test_images(digits_rgb)
    scripted = tmp_path / "net.torchscript.pt"
    torch.jit.save(torch.jit.script(net), scripted)
    exported = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)), exported)
    for name, spec in [("ts", f"torchscript:{scripted}"), ("ex", f"exported:{exported}")]:
        record = robench.import_model(name, spec, dataset="folder", data_dir=digits_rgb, workspace=ws, evaluate=False)
        assert record.origin.details.source_sha256 == store.file_sha256(tmp_path / spec.split("/")[-1])
    with _no_unpickling():
        loaded = {name: robench.load_model(name, ws) for name in ("ts", "ex")}
    with torch.no_grad():
        for model in loaded.values():
            assert torch.equal(model(x), net(x))
            assert model(x[:3]).shape == (3, 10)  # another batch size than at export


class _Scaled(torch.nn.Module):
    """A network with a plain tensor attribute: torch.export lifts it into the program's constants."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.scale = net, torch.tensor([1.5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.scale


def test_exported_constants_round_trip_and_are_checked(tmp_path, digits_rgb, ws):
    """An exported program's lifted constants are stored, hashed in the record, give the original logits, and a
    changed constants file is a one-line error, never a silently different model."""
    torch.manual_seed(0)
    net = _Scaled(_small_cnn(3)).eval()
    x = _test_images(digits_rgb)
    path = tmp_path / "scaled.pt2"
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)), path)
    record = robench.import_model("scaled", f"exported:{path}", dataset="folder", data_dir=digits_rgb, workspace=ws,
                                  evaluate=False)
    constants = store.model_dir("scaled", ws) / PROGRAM_CONSTANTS
    assert record.origin.details.constants and record.origin.details.constants_sha256 == store.file_sha256(
        constants)
    with _no_unpickling(), torch.no_grad():
        assert torch.equal(robench.load_model("scaled", ws)(x), net(x))
    stored = store.read_tensors(constants)
    store.write_tensors(constants, {k: v * 2 for k, v in stored.items()})
    one_line_error(run("attack", "--source", "scaled", "--n", "2", "--workspace", ws, "--data-dir", digits_rgb),
                   "does not match its record")
    with pytest.raises(RobenchError, match="does not match its record"):
        robench.load_model("scaled", ws)


class _Refused(Exception):
    pass


class _no_unpickling:
    """Every Python unpickling entry point raises inside the block."""

    def __enter__(self):
        def refuse(*args, **kwargs):
            raise _Refused("unpickling attempted")

        self.saved = [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]
        self.saved = [(mod, attr, getattr(mod, attr)) for mod, attr in self.saved]
        for mod, attr, _ in self.saved:
            setattr(mod, attr, refuse)

    def __exit__(self, *exc):
        for mod, attr, value in self.saved:
            setattr(mod, attr, value)


def test_loading_imports_never_unpickles(rgb_ws):
    with _no_unpickling():
        for name in ("tv-resnet18", "tiny-rgb"):
            assert robench.load_model(name, rgb_ws) is not None


def test_gray_data_needs_gray_to_rgb(digits_png, digits_rgb, ws):
    """A 3-channel network on 1-channel data is refused, or adapted by the explicit --gray-to-rgb."""
    args = ["import", "gray", "--from", "torchvision:resnet18", "--dataset", "folder", "--data-dir", digits_png,
            "--workspace", ws, "--no-evaluate"]
    one_line_error(run(*args), "3-channel", "--gray-to-rgb")
    assert not (store.workspace_dir(ws) / "models").exists() or not any((store.workspace_dir(ws) / "models").iterdir())
    r = run(*args, "--gray-to-rgb")
    assert r.exit_code == 0, r.output
    model = robench.load_model("gray", ws)
    x = load_dataset("folder", digits_png).test.floats(slice(0, 4))
    assert x.shape[1] == 1
    with torch.no_grad():
        assert torch.equal(model(x), model.net(x.repeat(1, 3, 1, 1)))
    one_line_error(run("import", "rgb-gray", "--from", "torchvision:resnet18", "--gray-to-rgb", "--dataset", "folder",
                       "--workspace", ws, "--no-evaluate", "--data-dir", digits_rgb), "1-channel")


def test_normalisation_and_class_map(user_module, digits_rgb, ws, tmp_path):
    """--mean/--std go inside the stored model; a 12-output model maps onto 10 labels through --class-map."""
    mapping = {str(i): i for i in range(10)} | {"10": "0", "11": 1}  # outputs 10, 11 also vote for labels 0, 1
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    robench.import_model("mapped", f"python:{user_module}:twelve_outputs", dataset="folder", data_dir=digits_rgb,
                         workspace=ws, mean=[0.5], std=[0.25], class_map=tmp_path / "map.json", evaluate=False)
    model = robench.load_model("mapped", ws)
    x = _test_images(digits_rgb, 4)
    with torch.no_grad():
        raw = sys.modules[user_module].twelve_outputs()
        raw.load_state_dict({k.removeprefix("net."): v for k, v in model.state_dict().items() if k.startswith("net.")})
        logits = raw((x - 0.5) / 0.25)
        out = model(x)
    assert out.shape == (4, 10)
    assert torch.allclose(out[:, 0], torch.logsumexp(logits[:, [0, 10]], 1), atol=1e-5)
    assert torch.allclose(out[:, 5], logits[:, 5], atol=1e-6)
    assert model.robench_record.origin.details.normalisation == "--mean/--std"


def _evil_pickle(path, marker):
    class Payload:  # unpickling this would create the marker folder
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    torch.save({"conv.weight": torch.zeros(2), "payload": Payload()}, path)


def test_bad_input_is_one_line_and_writes_nothing(user_module, ws, tmp_path):
    base = ["--dataset", "digits", "--workspace", ws, "--no-evaluate"]  # built-in 1-channel digits: quick to load
    marker = tmp_path / "pwned"
    _evil_pickle(tmp_path / "evil.pt", marker)
    torch.manual_seed(0)
    for classes, channels, file in [(5, 1, "five.pt"), (10, 3, "rgb.pt")]:
        net = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(classes))
        net(torch.zeros(1, channels, 32, 32))
        torch.jit.save(torch.jit.script(net), tmp_path / file)
    exports = {"rgb.pt2": (3, 32, True), "fixed.pt2": (1, 32, False), "small.pt2": (1, 16, True)}
    for file, (channels, size, dynamic) in exports.items():  # digits: 1 channel, 32 px, and robench's batches vary
        net = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                  torch.nn.Linear(4, 10)).eval()
        x = torch.zeros(2, channels, size, size)
        torch.export.save(torch.export.export(
            net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic else None), tmp_path / file)
    tiny_sd = robench.create_model("tiny", num_classes=5, in_channels=1, width=8).state_dict()
    torch.save(tiny_sd, tmp_path / "tiny5.pt")
    cases = [
        (["--from", "onnx:model.onnx"], ["torchvision:NAME[:WEIGHTS]", "python:MODULE:FUNCTION"]),
        (["--from", f"state-dict:{tmp_path / 'missing.pt'}", "--arch", "tiny"], ["no such file"]),
        (["--from", f"state-dict:{tmp_path / 'evil.pt'}", "--arch", "tiny"], ["never unpickles"]),
        (["--from", f"state-dict:{tmp_path / 'tiny5.pt'}", "--arch", "tiny", "--width", "8"], ["5 classes"]),
        (["--from", f"state-dict:{tmp_path / 'evil.pt'}"], ["--arch"]),
        (["--from", f"torchscript:{tmp_path / 'five.pt'}"], ["5 outputs", "--class-map"]),
        (["--from", f"torchscript:{tmp_path / 'rgb.pt'}"], ["3-channel images", "--gray-to-rgb"]),
        (["--from", f"torchscript:{tmp_path / 'evil.pt'}"], ["TorchScript"]),
        (["--from", f"exported:{tmp_path / 'five.pt'}"], ["exported program"]),
        (["--from", f"exported:{tmp_path / 'rgb.pt2'}"], ["3-channel images", "--gray-to-rgb"]),
        (["--from", f"exported:{tmp_path / 'small.pt2'}", "--gray-to-rgb"], ["1-channel images", "drop --gray-to-rgb"]),
        (["--from", f"torchscript:{tmp_path / 'five.pt'}", "--gray-to-rgb"], ["drop --gray-to-rgb"]),
        (["--from", f"exported:{tmp_path / 'fixed.pt2'}"], ["fixed batch of 2", "dynamic_shapes"]),
        (["--from", f"exported:{tmp_path / 'small.pt2'}"], ["exported for 16x16 images", "32x32"]),
        (["--from", f"python:{user_module}:raises"], ["forward pass fails", "only takes 4 features"]),
        (["--from", f"python:{user_module}:nan"], ["NaN"]),
        (["--from", f"python:{user_module}:not_a_module"], ["not a torch nn.Module"]),
        (["--from", "torchvision:resnet19"], ["did you mean resnet18"]),
        (["--from", "torchvision:resnet18:IMAGENET9K"], ["weights for torchvision model"]),
        (["--from", "torchvision:resnet18", "--mean", "0.5"], ["--mean and --std"]),
        (["--from", "torchvision:resnet18", "--arch", "tiny"], ["only apply to state-dict"]),
    ]
    for args, needles in cases:
        one_line_error(run("import", "bad", *args, *base), *needles)
    assert not marker.exists()  # the pickle's payload never ran
    models = store.workspace_dir(ws) / "models"
    assert not models.exists() or not any(models.iterdir())  # no model, no hidden temporary folder


def test_offline_weights_say_where_torch_looks(ws, monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    one_line_error(run("import", "pre", "--from", "torchvision:resnet18:IMAGENET1K_V1", "--dataset", "digits",
                       "--workspace", ws), str(tmp_path / "torch-home"), "resnet18-")


def test_timm_model_offline(ws, monkeypatch):
    """timm:NAME builds the network with the dataset's classes and channels (no download); :pretrained offline
    says where timm looks; without timm the error names the extra to install."""
    timm = pytest.importorskip("timm")
    record = robench.import_model("tm", "timm:test_resnet", dataset="digits", workspace=ws, evaluate=False)
    assert record.arch == "timm:test_resnet" and record.versions["timm"] == timm.__version__
    assert record.origin.details.model_channels == 1  # in_chans follows the data: no --gray-to-rgb needed
    model = robench.load_model("tm", ws)
    x = load_dataset("digits").test.floats(slice(0, 4))
    with torch.no_grad():
        assert torch.equal(model(x), robench.load_model("tm", ws)(x)) and model(x).shape == (4, 10)

    def offline(*args, **kwargs):
        raise OSError("hub unreachable")

    monkeypatch.setattr(timm, "create_model", offline)
    one_line_error(run("import", "tp", "--from", "timm:test_resnet:pretrained", "--dataset", "digits",
                       "--workspace", ws), "HF_HOME", "timm/test_resnet")
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    one_line_error(run("import", "tx", "--from", "timm:test_resnet", "--dataset", "digits", "--workspace", ws),
                   "robench[timm]")


def _robustbench_stand_in(monkeypatch, net_factory):
    """A stand-in for the robustbench package (its load_model and model zoo), since offline nothing downloads."""
    import enum
    import types

    class BenchmarkDataset(enum.Enum):
        cifar_10 = "cifar10"

    class ThreatModel(enum.Enum):
        Linf = "Linf"

    def load_model(model_name, model_dir, dataset, threat_model):
        zoo = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]
        net = zoo[model_name]["model"]()  # KeyError for unknown names, as robustbench does
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(-0.1, 0.1)  # "the downloaded checkpoint"
        return net.eval()

    model_dicts = {BenchmarkDataset.cifar_10: {ThreatModel.Linf: {"Standard2020": {"model": net_factory}}}}
    modules = {"robustbench": types.ModuleType("robustbench"), "robustbench.utils": types.ModuleType("utils"),
               "robustbench.model_zoo": types.ModuleType("model_zoo"),
               "robustbench.model_zoo.enums": types.ModuleType("enums")}
    modules["robustbench"].__version__ = "stand-in"
    modules["robustbench.utils"].load_model = load_model
    modules["robustbench.model_zoo"].model_dicts = model_dicts
    modules["robustbench.model_zoo.enums"].BenchmarkDataset = BenchmarkDataset
    modules["robustbench.model_zoo.enums"].ThreatModel = ThreatModel
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def test_robustbench_adapter_with_a_stand_in(ws, monkeypatch):
    """robustbench:NAME loads through robustbench.utils.load_model and rebuilds through its model zoo (tested
    against a stand-in module: offline, RobustBench's checkpoints cannot be downloaded)."""
    _robustbench_stand_in(monkeypatch, lambda: _small_cnn(1))
    one_line_error(run("import", "rb", "--from", "robustbench:Standard2020", "--dataset", "digits", "--workspace", ws),
                   "--rb-dataset")
    one_line_error(run("import", "rb", "--from", "robustbench:Nobody2099", "--rb-dataset", "cifar10", "--dataset",
                       "digits", "--workspace", ws), "no model 'Nobody2099'")
    record = robench.import_model("rb", "robustbench:Standard2020", rb_dataset="cifar10", dataset="digits",
                                  workspace=ws, evaluate=False)
    assert record.origin.details.threat_model == "Linf" and record.versions["robustbench"] == "stand-in"
    assert record.origin.details.normalisation == "none"  # RobustBench models normalise inside, from [0, 1]
    x = load_dataset("digits").test.floats(slice(0, 4))
    model = robench.load_model("rb", ws)
    with torch.no_grad():
        assert torch.equal(model(x), model.net(x))
    monkeypatch.setitem(sys.modules, "robustbench", None)
    one_line_error(run("import", "rb2", "--from", "robustbench:Standard2020", "--dataset", "digits", "--workspace",
                       ws), "robench[robustbench]")


def test_suite_lists_imports(tmp_path):
    from robench import suites

    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_small_cnn(1)), tmp_path / "mine.ts")
    raw = {"study": {"name": "byo", "dataset": "digits"},
           "imports": [{"name": "mine", "from": f"torchscript:{tmp_path / 'mine.ts'}", "evaluate": False}],
           "attacks": [{"source": "mine", "method": "fgsm", "eps": "16/255", "n": 4}]}
    suite = suites.suite_from_dict(raw, workspace=tmp_path / "ws")
    assert [(s.kind, s.name, s.done) for s in suites.plan(suite)][0] == ("import", "mine", False)
    suites.run(suite, device="cpu")
    assert all(s.done for s in suites.plan(suite))
    assert robench.load_model("mine", tmp_path / "ws").robench_record.origin.kind == "import"
