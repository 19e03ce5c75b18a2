"""The three sentences `make demo` ends with, from evaluate's JSON file."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_three_sentences_on_stderr_with_the_ratios_of_the_report(tmp_path):
    common = {"n_true": 150, "common_n": 20}
    report = {"results": [
        {**common, "n_matched": 25, "recall": 25 / 150, "precision": 1.0, "common_mean_d50": 6.0,
         "common_mean_d50_arcsec": 1.41, "common_mean_strehl": 0.08},
        {**common, "n_matched": 100, "recall": 100 / 150, "precision": 0.95, "common_mean_d50": 2.0,
         "common_mean_d50_arcsec": 0.47, "common_mean_strehl": 0.56},
    ]}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(report))
    result = subprocess.run([sys.executable, f"{ROOT}/scripts/demo_summary.py", str(path), "demo/comparison.png"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.endswith(".") for line in lines)
    assert lines[0] == ("Stars found: the inferred image recovers 100 of 150 true stars (67 %) at precision 0.95, "
                        "the average stack 25 of 150 true stars (17 %) at precision 1.00.")
    assert 'inferred 0.47" and 0.56, average stack 1.41" and 0.08' in lines[1] and "20 stars" in lines[1]
    assert "3.0x smaller D50 and a 7.0x higher Strehl ratio, and finds 4.0x as many stars (see demo/comparison.png)" in lines[2]
