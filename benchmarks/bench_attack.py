"""Time robench's FGSM and PGD against a hand-written PyTorch loop, plus Boundary and CW per sample.

Run:  python benchmarks/bench_attack.py [--rounds 3] [--batch 128] [--part all|classic|overhead|methods]

``--part overhead`` is the attack-overhead comparison (issue 11, item 8): PGD 10 steps, FGSM and MI-FGSM
with frozen weights everywhere, robench's backends against the hand-written loop, Foolbox and ART called
directly. ``--part methods`` times every method added for issue 13 (DI, TI, VMI, M-DI-TI, APGD, AutoAttack)
through robench against the same attack called directly in its library.

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
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

import robench
import robench.attacks
from robench.attacks import art_backend, foolbox_backend, perturb
from robench.runtime import frozen

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
        f"robench {method} (default backend)": lambda: perturb(model, x, y, method, **params),
        f"robench {method} --backend foolbox": lambda: perturb(model, x, y, method, backend="foolbox", **params),
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


def _rounds(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Every round's time of each variant, interleaved with a rotating order (one warm-up call each first)."""
    import common

    return common.interleaved_times(runs, repeats=rounds, warmup=1)


def overhead(model, x, y, rounds: int) -> list[tuple[str, str, float, float]]:
    """Issue 11 item 8: robench's backends against the three direct implementations, weights frozen everywhere.

    Rows: (attack, variant, median s/batch, ratio to the fastest of hand-written / Foolbox / ART).
    """
    import foolbox as fb
    from art.attacks.evasion import FastGradientMethod, MomentumIterativeMethod, ProjectedGradientDescentPyTorch

    frozen(model)
    steps = 10
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.Misclassification(y)
    cases = {
        "FGSM": ("fgsm", {"eps": EPS}, lambda: hand_written(model, x, y, EPS, EPS, 1),
                 lambda: fb.attacks.LinfFastGradientAttack(random_start=False).run(fmodel, x, crit, epsilon=EPS),
                 lambda c: FastGradientMethod(c, eps=EPS, eps_step=EPS, batch_size=len(x))),
        f"PGD {steps} steps": (
            "pgd", {"eps": EPS, "step": STEP, "steps": steps}, lambda: hand_written(model, x, y, EPS, STEP, steps),
            lambda: fb.attacks.LinfPGD(abs_stepsize=STEP, steps=steps, random_start=False).run(
                fmodel, x, crit, epsilon=EPS),
            lambda c: ProjectedGradientDescentPyTorch(c, eps=EPS, eps_step=STEP, max_iter=steps, num_random_init=0,
                                                      batch_size=len(x), verbose=False)),
        f"MI-FGSM {steps} steps": (
            "mifgsm", {"eps": EPS, "step": STEP, "steps": steps}, lambda: hand_written_mi(model, x, y, steps),
            None,  # Foolbox's MI-FGSM accumulates sign(gradient), another method: not a baseline here
            lambda c: MomentumIterativeMethod(c, eps=EPS, eps_step=STEP, max_iter=steps, decay=1.0,
                                              batch_size=len(x), verbose=False)),
    }
    rows = []
    for label, (method, params, hand, fool, art_build) in cases.items():
        classifier = art_backend.classifier(model, x)
        runs = {"hand-written loop": hand}
        if fool is not None:
            runs["Foolbox direct (attack.run)"] = fool
        runs["ART direct (generate)"] = lambda b=art_build, c=classifier: b(c).generate(x.numpy(), y.numpy())
        for backend in robench.attacks.method_spec(method).backends:
            runs[f"robench --backend {backend}"] = lambda b=backend, m=method, p=params: perturb(model, x, y, m, b, **p)
        times = _rounds(runs, rounds)
        medians = {k: statistics.median(v) for k, v in times.items()}
        fastest = min(medians[k] for k in runs if not k.startswith("robench"))
        default = robench.attacks.method_spec(method).default_backend
        for k, med in medians.items():
            mark = " (default)" if k == f"robench --backend {default}" else ""
            rows.append((label, k + mark, med, med / fastest))
    return rows


def hand_written_mi(model, x, y, steps: int) -> torch.Tensor:
    """MI-FGSM (Dong et al.) in plain PyTorch: L1-normalised gradients accumulated with decay 1."""
    adv, g = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y, reduction="sum"), adv)
        g = g + grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        adv = (x + (adv.detach() + STEP * g.sign() - x).clamp(-EPS, EPS)).clamp(0, 1)
    return adv


def methods(model, x, y, rounds: int, steps: int = 10, only: list[str] | None = None,
            ) -> Iterator[tuple[str, str, float, float]]:
    """Issue 13's methods: robench (each backend) against the same attack called directly in its library.

    Yields rows (method and settings, variant, median s/batch, ratio to the library's direct call) method by
    method; ``only`` limits the methods.
    """
    import torchattacks as ta
    from art.attacks.evasion import AutoProjectedGradientDescent

    frozen(model)
    quiet = {"eps": EPS, "step": STEP, "steps": steps}
    eps8 = 8 / 255
    cases = [
        ("difgsm", quiet, lambda: ta.DIFGSM(model, eps=EPS, alpha=STEP, steps=steps, decay=0.0, resize_rate=0.9,
                                            diversity_prob=0.5)(x, y)),
        ("tifgsm", quiet, lambda: ta.TIFGSM(model, eps=EPS, alpha=STEP, steps=steps, decay=0.0, len_kernel=7, nsig=3,
                                            diversity_prob=0.0)(x, y)),
        ("mdti", quiet, lambda: ta.TIFGSM(model, eps=EPS, alpha=STEP, steps=steps, decay=1.0, len_kernel=7, nsig=3,
                                          resize_rate=0.9, diversity_prob=0.5)(x, y)),
        ("vmifgsm", {**quiet, "samples": 5}, lambda: ta.VMIFGSM(model, eps=EPS, alpha=STEP, steps=steps, decay=1.0,
                                                                N=5, beta=1.5)(x, y)),
        ("apgd", {"eps": eps8, "steps": steps}, lambda: ta.APGD(model, eps=eps8, steps=steps, n_restarts=1, seed=0,
                                                                 loss="ce")(x, y)),
        ("autoattack", {"eps": eps8, "steps": 10, "queries": 5000},
         lambda: ta.AutoAttack(model, norm="Linf", eps=eps8, version="standard", n_classes=10, seed=0)(x, y)),
    ]
    for method, params, direct in cases:
        if only and method not in only:
            continue
        runs = {"torchattacks direct": direct}
        if method == "apgd":
            classifier = art_backend.classifier(model, x)
            runs["ART direct"] = lambda c=classifier: AutoProjectedGradientDescent(
                c, eps=eps8, eps_step=2 * eps8, max_iter=steps, nb_random_init=1, batch_size=len(x),
                loss_type="cross_entropy", verbose=False).generate(x.numpy(), y.numpy())
        spec = robench.attacks.method_spec(method)
        for backend in spec.backends:
            runs[f"robench --backend {backend}"] = lambda b=backend, m=method, p=params: perturb(
                model, x, y, m, b, seed=0, **p)
        times = _rounds(runs, rounds)
        medians = {k: statistics.median(v) for k, v in times.items()}
        settings = ", ".join(f"{k}={round(v * 255, 2):g}/255" if k in ("eps", "step") else f"{k}={v}"
                             for k, v in params.items())
        for k, med in medians.items():
            mark = " (default)" if k == f"robench --backend {spec.default_backend}" else ""
            base = "ART direct" if k.endswith("art") else "torchattacks direct"
            yield f"{method} ({settings})", k + mark, med, med / medians[base]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--slow-batch", type=int, default=32, help="batch for Boundary and CW")
    parser.add_argument("--part", choices=("all", "classic", "overhead", "methods"), default="all")
    parser.add_argument("--methods-batch", type=int, default=32, help="batch for --part methods")
    parser.add_argument("--methods", nargs="*", help="--part methods: only these (default: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch CPU threads (1 gives stable ratios on a machine shared with other processes)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = robench.create_model("resnet18", width=16).eval()
    x = torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(2))
    started = time.perf_counter()
    print(f"## Attacks\n\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); robench {robench.__version__}\n"
          f"model: resnet18 width 16, 3x32x32, batch {args.batch}; median of {args.rounds} interleaved rounds\n")
    if args.part in ("all", "overhead"):
        print("### Attack overhead (issue 11 item 8): weights frozen everywhere, ratio to the fastest direct call\n\n"
              "| attack | variant | s/batch | ratio |\n|---|---|---:|---:|")
        for label, k, med, ratio in overhead(model, x, y, args.rounds):
            print(f"| {label} | {k} | {med:.3f} | {ratio:.2f}x |")
        print()
    if args.part in ("all", "methods"):
        xm, ym = x[: args.methods_batch], y[: args.methods_batch]
        print(f"### Issue 13 methods, batch {len(xm)}: ratio to the library's direct call\n\n"
              "| method | variant | s/batch | ms/image | ratio |\n|---|---|---:|---:|---:|")
        for label, k, med, ratio in methods(model, xm, ym, args.rounds, only=args.methods):
            print(f"| {label} | {k} | {med:.3f} | {1000 * med / len(xm):.1f} | {ratio:.2f}x |", flush=True)
        print()
    if args.part not in ("all", "classic"):
        print(f"total benchmark time: {time.perf_counter() - started:.0f} s")
        return
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
