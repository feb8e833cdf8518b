"""Time robench's FGSM and PGD against a hand-written PyTorch loop, plus Boundary and CW per sample.

Run:  python benchmarks/bench_attack.py [--rounds 3] [--batch 128] [--part all|classic|overhead|methods|precision]
      python benchmarks/bench_attack.py --part precision --device cuda --width 64 [--compile]   # fp32 vs bf16 rows

``--part overhead`` is the attack-overhead comparison (issue 11, item 8): PGD 10 steps, FGSM and MI-FGSM
with frozen weights everywhere, robench's backends against the hand-written loop, Foolbox and ART called
directly. ``--part methods`` times every method added for issue 13 (DI, TI, VMI, M-DI-TI, APGD, AutoAttack)
through robench against the same attack called directly in its library. ``--part precision`` times PGD at
``--precision fp32`` and ``bf16`` (and through torch.compile with ``--compile``) on ``--device`` against the
hand-written fp32 loop.

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
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from common import interleaved_times, paired_ratio

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
    robench_fb = getattr(foolbox_backend, method)
    return {
        "hand-written loop": hand,
        f"robench {method} (default backend)": lambda: perturb(model, x, y, method, **params),
        f"robench {method} --backend foolbox": lambda: perturb(model, x, y, method, backend="foolbox", **params),
        f"robench {method} --backend art": lambda: perturb(model, x, y, method, backend="art", **params),
        "plain foolbox attack(...)": lambda: plain_foolbox(model, x, y, fb_attack),
        "foolbox run, weights not frozen": lambda: robench_fb.run(model, x, y, full).adv,
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


class _Stop(Exception):
    """The capped model's call budget is spent."""


class _Calls(torch.nn.Module):
    """Counts the forward calls the wrapped model gets; with ``cap``, raises :class:`_Stop` on call ``cap + 1``
    (the same budget robench's ``--queries`` gives, for the library run directly)."""

    def __init__(self, model: torch.nn.Module, cap: int | None = None) -> None:
        super().__init__()
        self.model, self.calls, self.cap = model, 0, cap
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cap is not None and self.calls >= self.cap:
            raise _Stop
        self.calls += 1
        return self.model(x)


def query_based(model, x, y, rounds: int, square_queries: int, square_eps: float,
                hsj_queries: int) -> list[tuple[str, str, float, float, str]]:
    """Square and HopSkipJump: robench against the same attack called directly in its library, interleaved, on
    equal work.

    Square at ``square_eps``, small enough that no variant fools any image: every example then runs the whole
    budget in every variant (at a larger eps the variant that fools more images early stops early, and the time
    ratio measures luck, not overhead). ART's SquareAttack.generate runs with max_iter = queries - 1 (ART's own
    batching: it re-evaluates the current images and the whole batch every iteration).
    HopSkipJump: Foolbox's blended-noise start and HopSkipJumpAttack run directly on the model behind a plain
    call counter that stops the run after ``hsj_queries`` calls (Foolbox queries the whole batch in every call),
    against robench with ``--queries hsj_queries``. Rows: (variant, s/batch, paired ratio, fooled, model calls).
    """
    import foolbox as fb
    import numpy as np
    from art.attacks.evasion import SquareAttack

    net = frozen(model)  # as robench runs every attack (see "Frozen weights" in docs/benchmarks.md)
    calls: dict[str, int] = {}

    def art_square():
        attack = SquareAttack(art_backend.classifier(net, x), norm=np.inf, eps=square_eps,
                              max_iter=square_queries - 1, batch_size=len(x), verbose=False)
        return torch.from_numpy(attack.generate(x.numpy(), y.numpy()))

    def foolbox_hsj():
        counting = _Calls(net, cap=hsj_queries)
        fmodel = fb.PyTorchModel(counting, bounds=(0, 1))
        try:
            starts = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=100, steps=50).run(
                fmodel, x, fb.criteria.Misclassification(y))
            ok = fmodel(starts).argmax(1) != y
            fb.attacks.HopSkipJumpAttack(steps=10**6).run(fmodel, x[ok], fb.criteria.Misclassification(y[ok]),
                                                          starting_points=starts[ok])
        except _Stop:
            pass
        calls["hopskipjump: Foolbox direct"] = counting.calls
        return None

    def robench_hsj():
        counting = _Calls(net)
        out = perturb(counting, x, y, "hopskipjump", queries=hsj_queries, eps=1e4)
        calls["hopskipjump: robench"] = counting.calls
        return out

    fns = {
        "square: ART SquareAttack.generate": art_square,
        "square: robench (default: robench)": lambda: perturb(model, x, y, "square", eps=square_eps,
                                                              queries=square_queries),
        "square: robench --backend art": lambda: perturb(model, x, y, "square", backend="art", eps=square_eps,
                                                         queries=square_queries),
        "hopskipjump: Foolbox direct": foolbox_hsj,
        "hopskipjump: robench": robench_hsj,
    }
    times = interleaved_times(fns, repeats=rounds, warmup=0)
    rows = []
    for k, fn in fns.items():
        base = "square: ART SquareAttack.generate" if k.startswith("square") else "hopskipjump: Foolbox direct"
        adv = fn()
        with torch.no_grad():
            fooled = math.nan if adv is None else (model(adv).argmax(1) != y).float().mean().item()
        rows.append((k, f"{statistics.median(times[k]):.2f}", paired_ratio(times, k, base), fooled,
                     str(calls.get(k, ""))))
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
    parser.add_argument("--query-batch", type=int, default=32, help="batch for Square and HopSkipJump")
    parser.add_argument("--square-queries", type=int, default=200)
    parser.add_argument("--square-eps", type=float, default=2 / 255,
                        help="Square's Linf eps: small, so no variant fools an image and all do equal work")
    parser.add_argument("--hsj-queries", type=int, default=300,
                        help="HopSkipJump's budget: model calls of the direct run, queries per example of robench's")
    parser.add_argument("--only-queries", action="store_true", help="run only the query-based rows")
    parser.add_argument("--query-model", default=None,
                        help="trained model folder for the query rows, with --query-data (a random network calls "
                             "every noise image the same class, so HopSkipJump's start fails)")
    parser.add_argument("--query-data", default=None, help="data folder of --query-model's dataset")
    parser.add_argument("--part", choices=("all", "classic", "overhead", "methods", "precision"), default="all")
    parser.add_argument("--methods-batch", type=int, default=32, help="batch for --part methods")
    parser.add_argument("--methods", nargs="*", help="--part methods: only these (default: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch CPU threads (1 gives stable ratios on a machine shared with other processes)")
    parser.add_argument("--device", default="cpu",
                        help="device of the precision table (fp32 / bf16 rows); the other tables run on the CPU")
    parser.add_argument("--width", type=int, default=16, help="model width of the precision table")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row to the precision table")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    if args.part in ("all", "precision") and not args.only_queries:
        print_precision(args)
        if args.part == "precision":
            return
    torch.manual_seed(0)
    model = robench.create_model("resnet18", width=16).eval()
    x = torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(2))
    started = time.perf_counter()
    if args.only_queries:
        print_queries(model, x, y, args)
        return
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
        xm = x[: args.methods_batch]
        with torch.no_grad():  # the model's own predictions: APGD and AutoAttack attack only correctly classified
            ym = model(xm).argmax(1)  # images, so with random labels they would time ~10% of the batch
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
    print_queries(model, x, y, args)
    print(f"\ntotal benchmark time: {time.perf_counter() - started:.0f} s")


def print_queries(model, x, y, args) -> None:
    xs = x[: args.query_batch]
    if args.query_model:
        from robench.datasets import resolve_dataset

        model = robench.load_model(args.query_model).eval()
        record = robench.store.read_model(Path(args.query_model).name, Path(args.query_model).parent.parent)
        xs = resolve_dataset(record.dataset, args.query_data).test.floats(torch.arange(args.query_batch))
        print(f"query rows: model {args.query_model} on its first {args.query_batch} test images")
    with torch.no_grad():
        ys = model(xs).argmax(1)  # the model's own predictions: every image starts correctly classified
    print(f"### Square (Linf eps {args.square_eps * 255:g}/255, {args.square_queries} queries) and HopSkipJump "
          f"(L2, {args.hsj_queries} queries), batch {args.query_batch}, median of {args.rounds} interleaved rounds\n\n"
          f"| variant | s/batch | ratio to the library's direct call (paired) | fooled | model calls |\n"
          f"|---|---:|---:|---:|---:|")
    for name, t, ratio, fooled, n_calls in query_based(model, xs, ys, args.rounds, args.square_queries,
                                                       args.square_eps, args.hsj_queries):
        print(f"| {name} | {t} | {'' if math.isnan(ratio) else f'{ratio:.2f}x'} | "
              f"{'' if math.isnan(fooled) else f'{fooled:.2f}'} | {n_calls} |", flush=True)


if __name__ == "__main__":
    main()
