"""RunContext and the typed train(): one context object in place of six keywords, a ModelSpec and a Recipe in place
of flat options, each giving what the keyword form gives (same weights), with one precedence rule."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import robench
from robench import api, store
from robench.context import FIELDS, RunContext, resolve
from robench.errors import ArgumentError, RobenchError, UsageError
from robench.models import DefectSpec, ModelSpec
from robench.training import preset, recipe_from

TINY = dict(preset="quick", epochs=1, width=4, keep=0.5, seed=1)


def test_context_keywords_and_typed_objects_train_identical_weights(tmp_path):
    """Keywords, a context, and a ModelSpec with a Recipe: three spellings of one run, one set of weights."""
    events: list[str] = []
    flat = robench.train("tiny", dataset="digits", workspace=tmp_path / "a", device="cpu", precision="fp32",
                         workers=0, **TINY)
    ctx = RunContext(workspace=tmp_path / "b", device="cpu", precision="fp32", workers=0,
                     callback=lambda kind, payload: events.append(kind))
    in_context = robench.train("tiny", dataset="digits", context=ctx, **TINY)
    spec = ModelSpec("tiny", width=4, keep=0.5, seed=1)
    recipe = recipe_from(preset("quick", "digits"), epochs=1)
    typed = robench.train(spec, recipe=recipe, dataset="digits",
                          context=dataclasses.replace(ctx, workspace=tmp_path / "c"))
    assert flat.name == in_context.name == typed.name == "tiny-keep0.5-bottom-seed1"
    assert flat.weights_sha256 == in_context.weights_sha256 == typed.weights_sha256
    assert flat.recipe == in_context.recipe == typed.recipe and flat.config == typed.config
    assert (flat.preset, typed.preset) == ("quick", None)  # a Recipe object is no preset
    assert {Path(r.path).parent.parent.name for r in (flat, in_context, typed)} == {"a", "b", "c"}
    assert events[0] == "start" and "batch" in events  # the context's callback got the training's progress
    assert store.read_model(in_context.name, tmp_path / "b").weights_sha256 == flat.weights_sha256


def test_context_scores_like_the_keywords(trained_ws):
    """A score and the matrix give the same frame from a context as from the keywords (workspace positional too)."""
    ctx = RunContext(workspace=trained_ws, device="cpu", precision="fp32")
    kw = robench.noise_curve("*", trained_ws, sigmas=[0.0, 0.3], n=20, device="cpu", precision="fp32")
    via = robench.noise_curve("*", sigmas=[0.0, 0.3], n=20, context=ctx)
    assert kw.equals(via) and len(kw) == 4
    frames = robench.list_workspace_models(context=ctx), robench.list_workspace_models(trained_ws)
    assert frames[0].equals(frames[1]) and len(frames[0]) == 2


def test_context_attacks_and_trains_replicates_like_the_keywords(trained_ws, tmp_path):
    source = str(Path(trained_ws) / "models" / "tiny")
    kw = robench.attack(source, "fgsm", eps="16/255", n=16, seed=5, workspace=tmp_path / "a", device="cpu")
    via = robench.attack(source, "fgsm", eps="16/255", n=16, seed=5, context=RunContext(workspace=tmp_path / "b",
                                                                                          device="cpu"))
    assert kw.name == via.name and kw.sha256 == via.sha256 and kw.n > 0
    assert robench.load_set(via.name, context=RunContext(workspace=tmp_path / "b")).record.sha256 == kw.sha256
    ctx = RunContext(workspace=tmp_path / "r", device="cpu")
    records = robench.train_seeds("tiny", [0, 2], dataset="digits", preset="quick", epochs=1, width=4, context=ctx)
    assert [r.name for r in records] == ["tiny", "tiny-seed2"]
    assert sorted(store.list_model_names(tmp_path / "r")) == ["tiny", "tiny-seed2"]


def test_a_keyword_beside_a_context_overrides_that_field(tmp_path):
    """The rule: a keyword given a value replaces the context's field for that call; None leaves it."""
    seen = {}

    @robench.context.takes_context
    def probe(workspace=None, device=None, precision="fp32", *, workers=None, callback=None):
        seen.update(workspace=workspace, device=device, precision=precision, workers=workers)

    ctx = RunContext(workspace="ws", device="cuda:1", precision="bf16")
    probe(context=ctx)
    assert seen == {"workspace": "ws", "device": "cuda:1", "precision": "bf16", "workers": None}
    probe("other", "cpu", context=ctx)  # positional keywords count as given
    assert seen["workspace"] == "other" and seen["device"] == "cpu" and seen["precision"] == "bf16"
    probe(device=None, precision="fp32", workers=2, context=ctx)
    assert seen == {"workspace": "ws", "device": "cuda:1", "precision": "fp32", "workers": 2}
    probe()  # no context: the function's own defaults
    assert seen == {"workspace": None, "device": None, "precision": "fp32", "workers": None}
    assert resolve(ctx, device="cpu", workers=None) == RunContext(workspace="ws", device="cpu", precision="bf16")
    assert ctx.device == "cuda:1"  # frozen: nothing changed the caller's context
    assert "context" in inspect.signature(probe).parameters


def test_the_model_keywords_override_a_model_spec_and_the_recipe_keywords_a_recipe():
    spec = ModelSpec("tiny", keep=0.5, seed=2)
    got, recipe, name = api.settings(spec, recipe=preset("quick", "digits"), keep=0.3, epochs=3, dataset="digits")
    assert got == ModelSpec("tiny", keep=0.3, seed=2) and got.defects.mask_seed == 2
    assert recipe.epochs == 3 and recipe.milestones == [2, 2] and name == "tiny-keep0.3-bottom-seed2"
    assert api.planned_model_name(spec, seed=0) == "tiny-keep0.5-bottom"
    assert ModelSpec("tiny", seed=2, mask_seed=7).defects == DefectSpec(mask_seed=7)


def test_model_spec_defaults_are_the_defect_specs():
    """ModelSpec repeats DefectSpec's fields; their defaults must not drift apart."""
    ours = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
    for f in dataclasses.fields(DefectSpec):
        assert f.name in ours and (f.name == "mask_seed" or ours[f.name] == f.default), f.name


def test_train_keeps_its_keyword_form_in_its_signature():
    """The flat keywords stay visible (help, argument checks, suite schema); the function takes 16 + **options."""
    public = inspect.signature(robench.train).parameters
    assert {*api.MODEL_KEYWORDS, *api.RECIPE_KEYWORDS, "context", "recipe", *FIELDS} <= set(public)
    code = inspect.unwrap(robench.train).__code__  # what the function itself declares
    declared = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    assert len(declared) == 16 and "keep" not in declared and "epochs" not in declared
    assert code.co_flags & inspect.CO_VARKEYWORDS
    with pytest.raises(TypeError, match="keepp"):
        robench.train("tiny", keepp=0.5)


@pytest.mark.parametrize("make,message", [
    (lambda: RunContext(device="gpu"), "RunContext.device = 'gpu': not a device"),
    (lambda: RunContext(workers=-1), "RunContext.workers = -1: expected a whole number >= 0"),
    (lambda: RunContext(precision="fp8"), "RunContext.precision = 'fp8': choose one of fp32, bf16, fp16"),
    (lambda: RunContext(callback="log"), "RunContext.callback = 'log': expected a function"),
    (lambda: RunContext().with_keywords(gpu=1), "RunContext has no field 'gpu'"),
    (lambda: robench.matrix(context={"workspace": "ws"}), "context = {'workspace': 'ws'}: expected a robench.Run"),
    (lambda: robench.train("tiny", context=RunContext(), workers=-2), "workers = -2: expected a whole number >= 0"),
    (lambda: robench.train("tiny", recipe=preset("quick", "digits"), preset="quick"), "a recipe or a preset, not both"),
    (lambda: robench.train("tiny", recipe={"epochs": 1}), "expected a robench.Recipe"),
    (lambda: robench.train(3), "expected an architecture's name or a robench.ModelSpec"),
    (lambda: ModelSpec("tiny", keep=0.0), "keep = 0.0: expected a number in (0, 1]"),
    (lambda: ModelSpec("tinny"), "unknown architecture 'tinny'"),
])
def test_bad_values_are_one_line_errors(make, message):
    with pytest.raises(RobenchError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_device_from_the_context_is_checked_like_the_keyword(tmp_path):
    with pytest.raises(UsageError, match="device 'cuda:7'"):
        robench.train("tiny", dataset="digits", context=RunContext(workspace=tmp_path, device="cuda:7"), **TINY)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_unknown_keywords_beside_a_context_are_argument_errors():
    with pytest.raises(ArgumentError, match="devise"):
        robench.matrix(devise="cpu", context=RunContext())
