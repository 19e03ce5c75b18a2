"""The end of `make demo`: three plain sentences on stderr from `dancekit evaluate --json`'s file.

Usage: python scripts/demo_summary.py demo/metrics.json [FIGURE]
(the first image is taken as the average stack, the second as the U-Net's inferred image)
"""

from __future__ import annotations

import json
import sys


def sentences(report: dict, figure: str) -> list[str]:
    average, inferred = report["results"][:2]
    n_true = inferred["n_true"]

    def found(r: dict) -> str:
        return f"{r['n_matched']} of {n_true} true stars ({100 * r['recall']:.0f} %) at precision {r['precision']:.2f}"

    def d50(r: dict, key: str) -> str:
        arcsec = r.get(f"{key}_arcsec")
        return f'{arcsec:.2f}"' if arcsec is not None else f"{r[key]:.2f} px"

    common = inferred["common_n"]
    return [
        f"Stars found: the inferred image recovers {found(inferred)}, the average stack {found(average)}.",
        f"D50 and Strehl on the {common} stars found in both: inferred {d50(inferred, 'common_mean_d50')} and "
        f"{inferred['common_mean_strehl']:.2f}, average stack {d50(average, 'common_mean_d50')} and "
        f"{average['common_mean_strehl']:.2f}.",
        f"Average vs inferred: the U-Net's image has a {average['common_mean_d50'] / inferred['common_mean_d50']:.1f}x "
        f"smaller D50 and a {inferred['common_mean_strehl'] / average['common_mean_strehl']:.1f}x higher Strehl ratio, "
        f"and finds {inferred['n_matched'] / max(average['n_matched'], 1):.1f}x as many stars (see {figure}).",
    ]


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(sys.argv[1]) as handle:
        report = json.load(handle)
    figure = sys.argv[2] if len(sys.argv) == 3 else "the --plot figure"
    print("\n".join(sentences(report, figure)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
