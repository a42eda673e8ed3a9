"""The HTML report: self-contained, every figure embedded, every check listed."""

import re

from simlab.report import render_html


def test_report_embeds_every_figure_and_lists_every_check(simlab, tmp_path):
    result = simlab(
        "dropout",
        "--samples",
        "5000",
        "--N",
        "16",
        "--M",
        "8",
        "--p",
        "0.2,0.6",
        "--quiet",
        "--out",
        "run",
        "--claim",
        "var_after=(1/2 - 1/(2*pi))/(1-p)",
    )
    assert result.exit_code == 1
    page = (tmp_path / "run" / "report.html").read_text()
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert sorted(images) == ["dropout_convergence", "dropout_laws", "dropout_moments"]
    assert page.count("<tr>") == 1 + 16  # header + 14 built-in + 2 user checks
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "Var(h̃) = 1/(2(1−p)) − 1/(2π)" in page
    assert "2 failed" in page


def test_report_command_combines_run_folders(simlab, tmp_path):
    for name in ("a", "b"):
        assert (
            simlab(
                "dropout",
                "--samples",
                "3000",
                "--N",
                "8",
                "--M",
                "4",
                "--quiet",
                "--out",
                name,
                "--no-plots",
            ).exit_code
            == 0
        )
    result = simlab("report", "a", "b", "-o", "both.html")
    assert result.exit_code == 0
    assert render_html([tmp_path / "a", tmp_path / "b"]).count("<tr>") == 1 + 14
    assert (tmp_path / "both.html").exists()
    bad = simlab("report", "nowhere")
    assert bad.exit_code == 2 and "no readable results.json" in bad.stderr
