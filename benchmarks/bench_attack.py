"""Time robench's FGSM and PGD against a hand-written PyTorch loop, plus Boundary and CW per sample.

Run:  python benchmarks/bench_attack.py [--rounds 3] [--batch 128]
      python benchmarks/bench_attack.py --device cuda --width 64 --only-precision [--compile]   # fp32 vs bf16 rows

Same model (resnet18, width 16, 3x32x32, random but fixed weights and inputs), same batch and
settings for every variant. Variants run interleaved, round after round, and each reports its
median, so load from other processes hits them all alike. The hand-written loop exists only as
this baseline. Prints a markdown table: time per batch, the ratio to the hand-written loop, and
the mean absolute difference of the adversarial images from the loop's (the loop's own row shows
its run-to-run difference: multi-threaded conv backward is not bit-exact, so signs of near-zero
gradients can flip).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

import robench
from robench.attacks import art_backend, foolbox_backend, perturb

EPS, STEP, STEPS = 16 / 255, 1 / 255, 20


def hand_written(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float,
                 steps: int) -> torch.Tensor:
    """The baseline: basic iterative method in plain PyTorch (input gradients only)."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, adv)
        adv = torch.min(torch.max(adv.detach() + step * grad.sign(), x - eps), x + eps).clamp_(0, 1)
    return adv


def plain_foolbox(model, x, y, attack) -> torch.Tensor:
    """Foolbox as its README shows it: attack(fmodel, x, y, epsilons=...) on the model as loaded."""
    import foolbox as fb

    return attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=EPS)[1]


def plain_art(model, x, y, build) -> torch.Tensor:
    """ART as usually written: classifier.generate on numpy, the model as loaded (weights trainable)."""
    return torch.from_numpy(build(art_backend.classifier(model, x)).generate(x.numpy(), y.numpy()))


def variants(model, x, y, method: str) -> dict[str, Callable[[], torch.Tensor]]:
    import foolbox as fb
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescentPyTorch

    if method == "fgsm":
        params = {"eps": EPS}
        fb_attack = fb.attacks.LinfFastGradientAttack(random_start=False)
        art_build = lambda c: FastGradientMethod(c, eps=EPS, eps_step=EPS, batch_size=len(x))  # noqa: E731
        hand = lambda: hand_written(model, x, y, EPS, EPS, 1)  # noqa: E731
    else:
        params = {"eps": EPS, "step": STEP, "steps": STEPS}
        fb_attack = fb.attacks.LinfPGD(abs_stepsize=STEP, steps=STEPS, random_start=False)
        art_build = lambda c: ProjectedGradientDescentPyTorch(  # noqa: E731
            c, eps=EPS, eps_step=STEP, max_iter=STEPS, num_random_init=0, batch_size=len(x), verbose=False)
        hand = lambda: hand_written(model, x, y, EPS, STEP, STEPS)  # noqa: E731
    full = {**params, "random_start": False} if method == "pgd" else params
    fb_build = getattr(foolbox_backend, method)
    return {
        "hand-written loop": hand,
        f"robench {method} (default: foolbox)": lambda: perturb(model, x, y, method, **params),
        f"robench {method} --backend art": lambda: perturb(model, x, y, method, backend="art", **params),
        "plain foolbox attack(...)": lambda: plain_foolbox(model, x, y, fb_attack),
        "foolbox run, weights not frozen": lambda: foolbox_backend.run(fb_build, model, x, y, full),
        "plain ART generate": lambda: plain_art(model, x, y, art_build),
    }


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(model, x, y, method: str, rounds: int) -> list[tuple[str, float, float, float]]:
    runs = variants(model, x, y, method)
    times: dict[str, list[float]] = {k: [] for k in runs}
    ref = runs["hand-written loop"]()  # warm-up (imports, allocator), not timed; the reference output
    for fn in runs.values():
        fn()
    outputs = {}
    for _ in range(rounds):
        for k, fn in runs.items():
            t, outputs[k] = timed(fn)
            times[k].append(t)
    base = statistics.median(times["hand-written loop"])
    rows = []
    for k in runs:
        med = statistics.median(times[k])
        diff = (outputs[k].float() - ref).abs().mean().item()
        rows.append((k, med, med / base, diff))
    return rows


def momentum(model, x, y, rounds: int, steps: int = 10) -> list[tuple[str, float]]:
    """MI-FGSM through each backend (no hand-written baseline: this only informs the default)."""
    runs = {b: (lambda b=b: perturb(model, x, y, "mifgsm", backend=b, steps=steps)) for b in ("art", "foolbox")}
    times: dict[str, list[float]] = {b: [] for b in runs}
    for fn in runs.values():
        fn()
    for _ in range(rounds):
        for b, fn in runs.items():
            times[b].append(timed(fn)[0])
    return [(b, statistics.median(t)) for b, t in times.items()]


def per_sample(model, x, y) -> list[tuple[str, str, float, float]]:
    """Boundary and CW: seconds per sample at reduced settings (noted), and the fraction fooled."""
    cases = [
        ("boundary", "foolbox", {"steps": 200, "init_directions": 100}),
        ("cw", "foolbox", {"steps": 20, "binary_search_steps": 2}),
        ("cw", "art", {"steps": 20, "binary_search_steps": 2}),
    ]
    rows = []
    for method, backend, params in cases:
        t, adv = timed(lambda: perturb(model, x, y, method, backend=backend, seed=0, **params))  # noqa: B023
        with torch.no_grad():
            fooled = (model(adv).argmax(1) != y).float().mean().item()
        settings = ", ".join(f"{k}={v}" for k, v in params.items())
        rows.append((f"{method} --backend {backend}", settings, t / len(x), fooled))
    return rows


def precision_rows(device: torch.device, width: int, batch: int, rounds: int,
                   compiled: bool) -> list[tuple[str, float, float, float]]:
    """PGD on ``device``: the hand-written fp32 loop, robench pgd at --precision fp32 and bf16 (and fp32 through
    torch.compile); rows of (variant, median s/batch, ratio to the loop, fraction of pixels differing from it)."""
    from common import interleaved_times

    from robench.runtime import compile_model, prepare

    torch.manual_seed(0)
    model = prepare(robench.create_model("resnet18", width=width), device).eval()
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(2)).to(device)
    pgd = {"eps": EPS, "step": STEP, "steps": STEPS}
    runs = {"hand-written loop, fp32": lambda: hand_written(model, x, y, EPS, STEP, STEPS),
            "robench pgd --precision fp32": lambda: perturb(model, x, y, "pgd", precision="fp32", **pgd),
            "robench pgd --precision bf16": lambda: perturb(model, x, y, "pgd", precision="bf16", **pgd)}
    if compiled:
        fast = compile_model(model)
        runs["robench pgd --precision fp32, torch.compile"] = lambda: perturb(fast, x, y, "pgd", precision="fp32",
                                                                               **pgd)
    times = interleaved_times(runs, repeats=rounds, warmup=1)
    ref = runs["hand-written loop, fp32"]()
    base = statistics.median(times["hand-written loop, fp32"])
    rows = []
    for k, fn in runs.items():
        med = statistics.median(times[k])
        rows.append((k, med, med / base, ((fn() - ref).abs() > 1e-6).float().mean().item()))
    return rows


def print_precision(args) -> None:
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"### PGD by precision on {device} ({name}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}), resnet18 width {args.width}, batch {args.batch}, eps "
          f"{EPS * 255:g}/255, step {STEP * 255:g}/255, {STEPS} steps, median of {args.rounds} interleaved rounds\n\n"
          f"| variant | s/batch | ratio to hand-written fp32 | pixels differing from it |\n|---|---:|---:|---:|")
    for k, med, ratio, differ in precision_rows(device, args.width, args.batch, args.rounds, args.compile):
        print(f"| {k} | {med:.3f} | {ratio:.2f}x | {100 * differ:.2f}% |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--slow-batch", type=int, default=32, help="batch for Boundary and CW")
    parser.add_argument("--device", default="cpu",
                        help="device of the precision table (fp32 / bf16 rows); the library tables run on the CPU")
    parser.add_argument("--width", type=int, default=16, help="model width of the precision table")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row to the precision table")
    parser.add_argument("--only-precision", action="store_true", help="print only the precision table")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    print_precision(args)
    if args.only_precision:
        return
    torch.manual_seed(0)
    model = robench.create_model("resnet18", width=16).eval()
    x = torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(2))
    started = time.perf_counter()
    print(f"## Attacks\n\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); robench {robench.__version__}\n"
          f"model: resnet18 width 16, 3x32x32, batch {args.batch}; median of {args.rounds} interleaved rounds\n")
    for method, label in (("fgsm", f"FGSM eps {EPS * 255:g}/255"),
                          ("pgd", f"PGD eps {EPS * 255:g}/255, step {STEP * 255:g}/255, {STEPS} steps")):
        rows = compare(model, x, y, method, args.rounds if method == "pgd" else 2 * args.rounds)
        print(f"### {label}\n\n| variant | s/batch | ratio to hand-written | mean abs diff to hand-written |\n"
              f"|---|---:|---:|---:|")
        for k, med, ratio, diff in rows:
            print(f"| {k} | {med:.3f} | {ratio:.2f}x | {diff:.1e} |")
        print()
    print(f"### MI-FGSM eps {EPS * 255:g}/255, step {STEP * 255:g}/255, 10 steps, decay 1\n\n"
          f"| backend | s/batch |\n|---|---:|")
    for backend, med in momentum(model, x, y, args.rounds):
        print(f"| {backend} | {med:.3f} |")
    print()
    xs, ys = x[: args.slow_batch], y[: args.slow_batch]
    print(f"### Boundary and CW (batch {args.slow_batch}, reduced settings)\n\n"
          f"| attack | settings | s/sample | fooled |\n|---|---|---:|---:|")
    for name, settings, t, fooled in per_sample(model, xs, ys):
        print(f"| {name} | {settings} | {t:.3f} | {fooled:.2f} |")
    print(f"\ntotal benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
