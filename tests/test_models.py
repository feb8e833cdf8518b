"""The model zoo and the defective layer: shapes, masks, placement, modes, reload."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robench import store
from robench.errors import RobenchError
from robench.models import EnsembleNet, create_model, list_models, load_model, model_entry, register_model, slots
from robench.models.defective import Slot
from robench.records import DatasetRef, ModelRecord

SMALL = {"densenet121": 4, "wrn32_10": 2}  # CPU-sized widths for the test suite


def small(name: str, **kw) -> nn.Module:
    return create_model(name, width=SMALL.get(name, 8), **kw)


def masked(model: nn.Module) -> list:
    return [s for s in slots(model) if s.mask is not None]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
def test_output_shape_on_unit_interval_input(name, size, channels):
    model = small(name, in_channels=channels, input_size=size, num_classes=7, keep=0.5).eval()
    x = torch.rand(3, channels, size, size)
    y = model(x)
    assert y.shape == (3, 7)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", list_models())
def test_masks_fixed_by_training_and_identical_after_reload(name, tmp_path):
    torch.manual_seed(0)
    model = small(name, keep=0.5, num_classes=4)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(".mask")}
    assert before, "a defective model must carry mask buffers"
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = nn.functional.cross_entropy(model(torch.rand(4, 3, 32, 32)), torch.randint(0, 4, (4,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = {k: v for k, v in model.state_dict().items() if k.endswith(".mask")}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p is s.mask for s in masked(model) for p in model.parameters())
    ref = DatasetRef("cifar10", num_classes=4, in_channels=3, input_size=32)
    store.save_model(model.state_dict(), ModelRecord(name, model.config, ref), tmp_path / name)
    reloaded = load_model(tmp_path / name)
    for k, v in reloaded.state_dict().items():
        if k.endswith(".mask"):
            assert torch.equal(v, before[k])
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(reloaded(x), model.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.7])
def test_live_fraction_close_to_keep(keep):
    model = create_model("resnet18", width=16, keep=keep)
    live = sum(float(s.mask.sum()) for s in masked(model))
    total = sum(s.mask.numel() for s in masked(model))
    assert total > 100_000
    assert abs(live / total - keep) < 0.01


@pytest.mark.parametrize("name", list_models())
def test_dead_neurons_output_exactly_zero(name):
    with torch.random.fork_rng():  # the same weights whichever tests ran before
        torch.manual_seed(0)
        model = small(name, keep=0.3).eval()
    outputs = {}
    hooks = [s.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o)) for s in masked(model)]
    model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))  # centred, so ReLUs pass about half
    for h in hooks:
        h.remove()
    assert outputs
    for slot, out in outputs.items():
        dead = (slot.mask == 0).expand_as(out[0])
        assert dead.any()
        assert torch.all(out[:, dead] == 0)
        assert (out[:, ~dead] != 0).float().mean() > 0.3  # live neurons do carry signal


def test_channel_mode_kills_whole_channels():
    model = create_model("resnet18", width=16, keep=0.5, mask="channel")
    for s in masked(model):
        assert s.mask.shape[1:] == (1, 1)
        assert 0 < s.mask.sum() < s.mask.shape[0]


def test_shared_mode_shares_one_spatial_mask():
    model = create_model("resnet18", width=16, keep=0.5, mask="shared").eval()
    outputs = {}
    for s in masked(model):
        assert s.mask.shape[0] == 1 and s.mask.shape[1] > 1
        s.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o))
    model(torch.rand(1, 3, 32, 32))
    for slot, out in outputs.items():
        dead = slot.mask[0] == 0
        assert torch.all(out[0][:, dead] == 0)  # the same positions are dead in every channel


def test_neuron_mode_differs_across_channels():
    model = create_model("resnet18", width=16, keep=0.5)
    mask = masked(model)[0].mask
    assert mask.shape[0] == 16
    assert not torch.equal(mask[0], mask[1])


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("placement", ["bottom", "top"])
def test_placement_touches_only_declared_layers(name, placement):
    model = small(name, keep=0.5, placement=placement)
    groups = {s.group for s in masked(model)}
    assert groups == {placement}
    assert all(s.mask is not None for s in slots(model) if s.group == placement)


def test_resnet18_bottom_is_stem_layer1_layer2():
    model = create_model("resnet18", width=8, keep=0.1)
    names = [n for n, m in model.named_modules() if getattr(m, "mask", None) is not None]
    # body.0 = stem, body.1.0-1 = layer1, body.1.2-3 = layer2 (two convs each)
    assert len(names) == 1 + 2 * 2 * 2
    assert all(n.startswith(("body.0.", "body.1.0.", "body.1.1.", "body.1.2.", "body.1.3.")) for n in names)


def test_vgg19_bottom_is_first_four_convs():
    model = create_model("vgg19", width=8, keep=0.1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    mask_channels = [s.mask.shape[0] for s in masked(model)]
    assert len(mask_channels) == 4
    assert mask_channels == [c.out_channels for c in convs[:4]]


def test_both_placement_with_separate_top_keep():
    model = create_model("resnet18", width=16, keep=0.3, keep_top=0.7, placement="both")
    for group, keep in (("bottom", 0.3), ("top", 0.7)):
        ms = [s.mask for s in masked(model) if s.group == group]
        frac = sum(float(m.sum()) for m in ms) / sum(m.numel() for m in ms)
        assert abs(frac - keep) < 0.02


def test_keep_one_is_standard():
    assert masked(create_model("resnet18", width=8, keep=1.0)) == []


def test_widen_multiplies_only_defective_blocks():
    base = create_model("resnet18", width=8, keep=0.5)
    wide = create_model("resnet18", width=8, keep=0.5, widen=2)
    convs = lambda m: [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
    assert convs(wide)[0] == 2 * convs(base)[0]
    assert convs(wide)[-1] == convs(base)[-1]  # top blocks keep their width


def test_same_seed_same_masks_other_seed_other_masks():
    a, b = create_model("tiny", keep=0.5, mask_seed=1), create_model("tiny", keep=0.5, mask_seed=1)
    c = create_model("tiny", keep=0.5, mask_seed=2)
    assert torch.equal(masked(a)[0].mask, masked(b)[0].mask)
    assert not torch.equal(masked(a)[0].mask, masked(c)[0].mask)


def test_ensemble_averages_member_logits_with_distinct_masks():
    model = create_model("tiny", keep=0.3, ensemble=3).eval()
    assert isinstance(model, EnsembleNet) and len(model.members) == 3
    x = torch.rand(4, 3, 32, 32)
    expected = sum(m(x) for m in model.members) / 3
    torch.testing.assert_close(model(x), expected)
    m0, m1 = (masked(m)[0].mask for m in model.members[:2])
    assert not torch.equal(m0, m1)


def test_upsample_and_strides_enlarge_feature_maps():
    base = create_model("resnet18", width=8, keep=0.5)
    up = create_model("resnet18", width=8, keep=0.5, upsample=2)
    flat = create_model("resnet18", width=8, keep=0.5, strides=[1, 1, 1, 2])
    last = lambda m: masked(m)[-1].mask.shape  # noqa: E731
    assert last(up)[-1] == 2 * last(base)[-1]
    assert last(flat)[-1] == 2 * last(base)[-1]
    assert up(torch.rand(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("regularizer", ["spatial-dropout", "dropblock"])
def test_dropout_baselines_sit_in_top_blocks_only(regularizer):
    model = create_model("resnet18", width=8, regularizer=regularizer)
    drops = [s for s in slots(model) if s.drop is not None]
    assert drops and all(s.group == "top" for s in drops)
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))  # inactive at test time


def test_registry_rejects_duplicates_and_suggests_names():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18", default_width=1, bottom="", top="")(lambda *a: None)
    with pytest.raises(RobenchError, match="did you mean resnet18"):
        model_entry("resnet19")


@pytest.mark.parametrize("bad", [{"keep": 0.0}, {"keep": 1.5}, {"keep_top": -0.1}, {"placement": "middle"},
                                 {"mask": "pixel"}, {"widen": 0}, {"strides": [3, 1, 1, 1]}])
def test_bad_options_are_clear_errors(bad):
    with pytest.raises(RobenchError):
        create_model("resnet18", width=8, **bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_masked_relu_matches_plain_autograd(dtype):
    """Slot(relu=True) computes relu(mask * x) with ReLU's backward; it must equal autograd on the plain formula."""
    torch.manual_seed(0)
    slot = Slot("bottom", relu=True)
    slot.set_mask((torch.rand(4, 5, 5) < 0.3).float())
    x = torch.randn(3, 4, 5, 5, dtype=dtype, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_(True)
    out = slot(x)
    ref = torch.relu(ref_x * slot.mask.to(dtype))
    upstream = torch.randn_like(ref)
    out.backward(upstream)
    ref.backward(upstream)
    assert out.dtype == dtype
    assert torch.equal(out, ref)
    assert torch.equal(x.grad, ref_x.grad)
    assert torch.all(x.grad[:, slot.mask == 0] == 0)  # no gradient reaches a dead neuron
    assert torch.equal(Slot(relu=True)(x), torch.relu(x))  # no mask: a plain ReLU
