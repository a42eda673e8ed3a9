"""The report in a real browser: headless Chromium loads it offline and every figure displays.

Needs Debian's ``chromium`` (``.ci/run`` installs it). Skipped where it is missing, except in CI,
where a missing browser is a failure: the check must not silently disappear.
"""

import os
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Appended to a copy of the page: after load, record which images decoded.
PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = 'IMAGES=' + imgs.length + ' BROKEN=' + JSON.stringify(bad);
  document.body.appendChild(out);
});</script>"""


def _chromium(tmp_path, *args):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run must install it")
        pytest.skip("chromium is not installed")
    profile = tmp_path / "profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_figure_displays_in_headless_chromium(simlab, tmp_path):
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
    )
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "run" / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()).stdout
    match = re.search(r"IMAGES=(\d+) BROKEN=(\[.*?\])", dom)
    assert match, dom[-2000:]
    assert int(match.group(1)) == 3
    assert match.group(2) == "[]"
    shot = tmp_path / "report.png"
    _chromium(
        tmp_path,
        "--window-size=1280,2000",
        f"--screenshot={shot}",
        (tmp_path / "run" / "report.html").as_uri(),
    )
    assert shot.exists() and shot.stat().st_size > 50_000
