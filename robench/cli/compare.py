"""`robench compare TARGET_A TARGET_B --set S`: do two targets defend differently on the same images?"""

from __future__ import annotations

from pathlib import Path

import typer

from robench.cli.options import CI_LEVEL, DATA_DIR, DEVICE, FORMAT, OUT, PRECISION, WORKSPACE, Format, Precision, value
from robench.cli.render import check_out, cli_errors, out, output, table


@cli_errors
def compare_cmd(
    target_a: str = typer.Argument(..., help="First target model.", show_default=False),
    target_b: str = typer.Argument(..., help="Second target model.", show_default=False),
    set_name: str = typer.Option(..., "--set", help="The adversarial set both are scored on.",
                                 show_default=False),
    ci_level: float = CI_LEVEL,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
) -> None:
    """McNemar's exact test: do TARGET_A and TARGET_B defend equally often on the same adversarial images?

    Pairs: the set's examples whose clean original both targets classify correctly. Counts of pairs defended by
    both, only A, only B, neither; the two defense rates; their difference (A - B) with its Agresti-Min
    interval; the exact two-sided p-value (binomial test on the pairs where the targets disagree).
    """
    import pandas as pd

    from robench.reports import tables
    from robench.scoring.paired import compare

    check_out(out_path)
    result = compare(target_a, target_b, set_name, workspace, device=device, data_dir=data_dir,
                     ci_level=ci_level, precision=value(precision))
    df = pd.DataFrame([result.to_json()])
    t = result.test
    shown = pd.DataFrame([{
        "A": target_a, "B": target_b, "set": set_name, "pairs": t.n, "only A": t.only_a, "only B": t.only_b,
        "rate A %": round(100 * t.rate_a, 2), "rate B %": round(100 * t.rate_b, 2),
        "A - B %": f"{100 * t.difference:+.2f} [{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}]",
        "p (McNemar exact)": f"{t.p_value:.4g}",
    }])
    title = f"{target_a} vs {target_b} on {set_name} ({t.ci_level:.0%} interval)"
    output(value(fmt), out_path, lambda: out.print(table(shown, title=title)),
           lambda f: tables.tidy_text(df, f) if f in ("csv", "json") else tables.display_text(shown, f, title))
