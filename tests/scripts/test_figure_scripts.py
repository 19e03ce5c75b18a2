"""Every `make figures` script at its --smoke scale: it runs, writes PNGs that are not blank, and the
numbers a PNG shows (read back from the data it carries, see dancekit.io.figure_files) are the
numbers of the Markdown table the same run wrote."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dancekit.io.figure_files import read_plotted_data
from tests.conftest import ROOT

VARIANCE_FLOOR = 150.0  # grey levels²: an empty white canvas has 0, axes and labels alone ~ 100


def run_script(name, outdir, *args):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), str(outdir), "--smoke", *args],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_not_blank(path):
    from PIL import Image

    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"), float)
    assert grey.var() > VARIANCE_FLOOR, f"{path.name} looks blank (grey variance {grey.var():.0f})"
    assert path.stat().st_size < 300_000, f"{path.name} is {path.stat().st_size} bytes"


def table_rows(path, first_column=None):
    """The cells of every Markdown table row of ``path`` (header and rule lines included)."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if first_column is None or cells[0] == first_column:
                rows.append(cells)
    return rows


def number(cell):
    """The first number of a table cell ('+1.23 +- 0.40 %' -> 1.23)."""
    return float(re.match(r"\s*([-+]?[\d.]+|nan)", cell).group(1))


def series(data, panel, label_start):
    found = [s for label, s in data[panel].items() if label.startswith(label_start)]
    assert len(found) == 1, (panel, label_start, list(data[panel]))
    return {k: np.array([np.nan if v is None else v for v in values], float) for k, values in found[0].items()}


def test_table1_figure_shows_the_tables_precision_and_recovered_fraction(tmp_path):
    run_script("figure_table1.py", tmp_path)
    png = tmp_path / "table1_m92_like.png"
    assert_not_blank(png)
    data = read_plotted_data(png)
    assert {"fig5_dmag", "fig5_dd50", "fig5_dx", "fig7_completeness", "fig8_d50", "fig8_strehl", "fig11_sweep"} <= set(data)
    rows = {cells[1]: cells for cells in table_rows(tmp_path / "table1.md", "M92-like cluster")}
    for stack in ("average", "inferred"):
        point = [s for label, s in data["fig11_sweep"].items() if label.endswith(f"m92_like_{stack}.fits at 5 σ")]
        assert len(point) == 1, list(data["fig11_sweep"])
        precision, recovered = float(rows[stack][2]), float(rows[stack][3])
        assert point[0]["y"][0] == pytest.approx(precision, abs=5e-4)
        assert point[0]["x"][0] == pytest.approx(recovered, abs=5e-4)


def test_dark_figures_show_the_rmse_of_table1_per_temperature(tmp_path):
    run_script("figure_dark.py", tmp_path)
    for name in ("dark_rmse.png", "dark_heatmap.png", "dark_histograms.png"):
        assert_not_blank(tmp_path / name)
    data = read_plotted_data(tmp_path / "dark_rmse.png")
    for method in ("gan", "median", "scaled"):
        row = next(cells for cells in table_rows(tmp_path / "dark_table1.md", method) if cells[1] == "actual")
        shown = series(data, "rmse_panel_0", f"{method} vs actual")
        assert shown["x"].tolist() == [-25.0, -15.0, -10.0, -5.0]
        np.testing.assert_allclose(shown["y"], [float(c) for c in row[3:]], atol=5e-3)


def test_dark_ablation_figure_shows_table2(tmp_path):
    run_script("figure_dark_ablation.py", tmp_path)
    assert_not_blank(tmp_path / "dark_table2.png")
    bars = read_plotted_data(tmp_path / "dark_table2.png")["ablation"]
    rows = [cells for cells in table_rows(tmp_path / "dark_table2.md") if cells[3][:1].isdigit() and cells[1] != "-"]
    assert len(rows) == 5
    for column, conditioning in ((3, "paper conditioning"), (4, "bundled conditioning")):
        np.testing.assert_allclose(bars[conditioning]["y"], [number(r[column]) for r in rows], atol=5e-3)


def test_r0_bias_figures_show_the_tables_biases_and_delays(tmp_path):
    run_script("figure_r0_bias.py", tmp_path)
    assert_not_blank(tmp_path / "r0_bias.png")
    assert_not_blank(tmp_path / "r0_delay.png")
    data = read_plotted_data(tmp_path / "r0_bias.png")
    rows = [cells for cells in table_rows(tmp_path / "r0_bias.md") if re.fullmatch(r"0\.\d\d", cells[0])]
    assert len(rows) == 18
    for loop in ("open", "closed"):
        for r0 in ("0.08", "0.12", "0.20"):
            mine = sorted((r for r in rows if r[0] == r0 and r[3] == loop), key=lambda r: float(r[1]))
            label = f"r0 = {round(100 * float(r0))} cm"
            np.testing.assert_allclose(series(data, f"{loop}_loop", f"{label}, corrected")["y"],
                                       [number(r[4]) for r in mine], atol=5e-3)
            np.testing.assert_allclose(series(data, f"{loop}_loop", f"{label}, no remaining")["y"],
                                       [number(r[6]) for r in mine], atol=5e-3)
    delays = [cells for cells in table_rows(tmp_path / "r0_delay.md") if re.fullmatch(r"[-+]\d", cells[0])]
    shown = series(read_plotted_data(tmp_path / "r0_delay.png"), "delay", "fit-r0 --delay")
    assert shown["x"].tolist() == [float(r[0]) for r in delays]
    np.testing.assert_allclose(shown["y"], [float(r[1]) for r in delays], atol=5e-5)


def test_r0_horizon_figure_shows_the_tables_bias_and_scatter(tmp_path):
    run_script("figure_r0_horizon.py", tmp_path)
    assert_not_blank(tmp_path / "r0_horizon.png")
    data = read_plotted_data(tmp_path / "r0_horizon.png")
    rows = [cells for cells in table_rows(tmp_path / "r0_horizon.md") if re.fullmatch(r"[\d.]+", cells[0])]
    for label, bias, scatter in (("converged", 2, 3), ("iteration 1", 4, 5)):
        shown = series(data, "fig5_bias", label)
        assert shown["x"].tolist() == [float(r[0]) for r in rows]
        np.testing.assert_allclose(shown["y"], [number(r[bias]) for r in rows], atol=5e-3)
        np.testing.assert_allclose(shown["yerr"], [number(r[scatter]) for r in rows], atol=5e-3)


def test_zeropoint_figure_shows_the_tables_rmse_per_exposure(tmp_path):
    run_script("figure_zeropoint.py", tmp_path)
    assert_not_blank(tmp_path / "zeropoint.png")
    data = read_plotted_data(tmp_path / "zeropoint.png")
    rmse = {cells[0]: float(cells[1]) for cells in table_rows(tmp_path / "zeropoint_table.md") if cells[1][:1].isdigit()}
    learned = series(data, "per_exposure", "AZP-RC correction on classical")
    # x: the classical error of each held-out exposure, y: the learned one; their RMSE is the table's
    assert np.sqrt(np.mean(learned["x"] ** 2)) == pytest.approx(rmse["classical (zeropoint default)"], abs=5e-5)
    assert np.sqrt(np.mean(learned["y"] ** 2)) == pytest.approx(rmse["AZP-RC correction on classical"], abs=5e-5)
    assert {"residual_vs_mag", "residual_vs_colour"} <= set(data)
