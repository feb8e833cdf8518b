"""`robench train` / `robench models` through Typer's runner, including bad input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from robench.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_and_list(ws):
    r = run("train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "1", "--keep", "0.5",
            "--workspace", ws)
    assert r.exit_code == 0, r.output
    assert "tiny-keep0.5-bottom" in r.output
    r = run("models", "--workspace", ws)
    assert r.exit_code == 0 and "tiny-keep0.5-bottom" in r.stdout


def test_help_lists_placements():
    r = run("train", "--help")
    assert r.exit_code == 0 and "stem conv + layer1 + layer2" in r.output


@pytest.mark.parametrize("args,message", [
    (["resnet19"], "did you mean resnet18"),
    (["tiny", "--keep", "0"], "(0, 1]"),
    (["tiny", "--keep", "1.5"], "(0, 1]"),
    (["tiny", "--dataset", "imagenet"], "unknown --dataset 'imagenet'"),
    (["tiny", "--mask", "pixel"], "unknown --mask 'pixel'"),
    (["tiny", "--placement", "middle"], "unknown --placement 'middle'"),
    (["tiny", "--preset", "turbo"], "unknown --preset 'turbo'"),
    (["tiny", "--keep", "abc"], "Invalid value for '--keep'"),
])
def test_bad_input_is_one_line_no_traceback(ws, args, message):
    r = run("train", *args, "--workspace", ws)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_data_says_where(ws, tmp_path):
    r = run("train", "tiny", "--dataset", "mnist", "--data-dir", tmp_path / "nodata", "--workspace", ws)
    assert r.exit_code == 1 and str(tmp_path / "nodata") in r.output and "Traceback" not in r.output


def test_existing_name_is_an_error(ws):
    args = ["train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "1", "--workspace", ws]
    assert run(*args).exit_code == 0
    r = run(*args)
    assert r.exit_code == 1 and "already exists" in r.output


def test_empty_workspace_models(ws):
    r = run("models", "--workspace", ws)
    assert r.exit_code == 0 and "no models" in r.output


# ---------------------------------------------------------------- schedules and augmentation defaults (issue 14)


def test_scaled_milestones_keep_the_presets_fractions():
    from robench.training import scale_milestones

    assert scale_milestones([150, 250], 350, 350) == [150, 250]
    assert scale_milestones([150, 250], 350, 50) == [21, 36]  # the MNIST preset's own milestones
    assert scale_milestones([150, 250], 350, 3) == [1, 2]
    assert scale_milestones([8, 12], 15, 3) == [2, 2]  # both decays kept: the lr still falls 100x
    assert scale_milestones([150, 250], 350, 1) == []  # one epoch leaves no room to decay


@pytest.mark.slow
def test_epochs_alone_scales_the_milestones_and_says_so(ws):
    from robench import store

    r = run("train", "tiny", "--dataset", "digits", "--epochs", "3", "--width", "4", "--workspace", ws,
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "3 epochs, lr 0.1 /10 at epochs 1,2, augmentation none" in r.stderr
    record = store.read_model("tiny", ws)
    assert record.recipe.milestones == [1, 2]
    assert [h.lr for h in record.history] == pytest.approx([0.01, 0.001, 0.001])  # lr after each epoch
    r = run("train", "tiny", "--dataset", "digits", "--epochs", "3", "--milestones", "2", "--width", "4",
            "--workspace", ws, "--device", "cpu", "--name", "given")
    assert r.exit_code == 0 and "at epoch 2," in r.stderr
    assert store.read_model("given", ws).recipe.milestones == [2]  # an explicit schedule is kept as given


@pytest.mark.parametrize("args", [["--epochs", "3", "--milestones", "2,3"], ["--milestones", "400"],
                                  ["--epochs", "5", "--milestones", "0"]])
def test_milestones_outside_the_run_are_one_line_errors(ws, args):
    r = run("train", "tiny", "--dataset", "digits", *args, "--workspace", ws)
    assert r.exit_code == 2 and "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    assert "is not within the run's" in r.stderr and "would never use it" in r.stderr


@pytest.mark.parametrize("mode,size,augment", [("L", 28, "flip"), ("RGB", 32, "crop-flip")])
def test_folder_augmentation_defaults_follow_the_images(tmp_path, mode, size, augment):
    """1-channel 28x28: the papers' MNIST recipe (flip); 3-channel 32x32: their CIFAR one (pad-4 crop + flip)."""
    from conftest import write_digits_tree

    from robench import store

    tree = write_digits_tree(tmp_path / "tree", mode=mode, size=size, per_class=10, test_fraction=0.5)
    ws = tmp_path / "ws"
    r = run("train", "tiny", "--dataset", "folder", "--data-dir", tree, "--preset", "quick", "--epochs", "1",
            "--width", "4", "--workspace", ws, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert f"augmentation {augment})" in r.stderr
    record = store.read_model("tiny", ws)
    assert record.recipe.augment == augment and record.config.input_size == size
    listing = run("models", "--workspace", ws).stdout
    assert "augment" in listing and f" {augment} " in listing
