"""`ganforge report`: one self-contained HTML page of runs, checked in a real headless browser.

The page writes what it did into <div id="status"> (curves drawn, images loaded, script errors);
chromium's --dump-dom reads that back after the scripts have run. The browser tests skip only
where no chromium binary exists (.ci/run installs Debian's).
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ganforge
from ganforge.cli import main
from ganforge.run_eval import evaluate_run

from conftest import TINY_DCGAN

BROWSER = next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if b), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium binary (apt-get install chromium; "
                                   ".ci/run installs it): the report's browser check is skipped")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: dcgan on digits with evaluations, and pix2pix (its grids are input | output | target)."""
    root = tmp_path_factory.mktemp("runs")
    ganforge.train("dcgan", data="digits", steps=20, out=root / "dcgan", batch_size=16, progress=False,
                   sets={**TINY_DCGAN, "log_every": 5, "sample_every": 5, "eval_every": 10, "eval_n": 100})
    evaluate_run(root / "dcgan", metrics="fd,classes", n=100)
    ganforge.train("pix2pix", data="digits-edges", steps=4, out=root / "pix2pix", progress=False,
                   sets={"g_width": 8, "d_width": 8, "log_every": 2, "sample_every": 2})
    return [root / "dcgan", root / "pix2pix"]


def browse(page: Path, tmp: Path, screenshot: Path | None = None) -> dict:
    """Open ``page`` in headless chromium; the attributes of its #status element once scripts have run."""
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    if screenshot is not None:
        subprocess.run(flags + [f"--screenshot={screenshot}", "--window-size=1280,2000", page.resolve().as_uri()],
                       capture_output=True, timeout=120)
    m = re.search(r'<div id="status"([^>]*)>([^<]*)', dom)
    assert m, f"no status element in the rendered page:\n{dom[:2000]}"
    status = dict(re.findall(r'data-([\w-]+)="([^"]*)"', m.group(1)))
    status["text"] = m.group(2)
    return status


def n_samples(run: Path) -> int:
    return len(list((run / "samples").glob("step_*.png")))


@needs_browser
def test_report_renders_in_a_browser(runs, tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", *map(str, runs), "--out", str(page)]) == 0
    shot = tmp_path / "report.png"
    status = browse(page, tmp_path, screenshot=shot)
    print(f"\nreport screenshot: {shot}\nbrowser status: {status['text']}")
    assert status["done"] == "1", status
    assert status["errors"] == "0", status["text"]
    # comparison: D_loss, G_loss overlaid; per run: losses and other values, img/s, eval curves
    assert int(status["charts"]) >= 6
    assert status["curves"] == status["charts"], status["text"]  # every canvas has ink
    expected = sum(n_samples(r) for r in runs)
    assert expected >= 6 and status["images"] == str(expected), status
    assert status["images-loaded"] == status["images"], status["text"]
    assert shot.stat().st_size > 10_000


@needs_browser
def test_a_broken_page_fails_the_browser_check(runs, tmp_path):
    """The check above would catch a script error or an image that does not load."""
    good = tmp_path / "good.html"
    main(["report", str(runs[0]), "--out", str(good)])
    text = good.read_text().replace("base64,iVBOR", "base64,AAAA", 1)  # a corrupt image
    broken = tmp_path / "broken.html"
    i = text.rindex("<script>") + len("<script>")  # a typo in the page's own script
    broken.write_text(text[:i] + "\nundefinedFunction();\n" + text[i:])
    status = browse(broken, tmp_path)
    assert status["done"] == "1" and status["errors"] == "1", status
    assert "undefinedFunction" in status["text"]
    assert status["curves"] == "0"
    assert int(status["images-loaded"]) == int(status["images"]) - 1


def test_report_content_is_self_contained(runs, tmp_path, capsys):
    page = tmp_path / "r.html"
    assert main(["report", *map(str, runs), "--out", str(page), "--title", "two runs"]) == 0
    assert "wrote" in capsys.readouterr().out
    html = page.read_text()
    # nothing fetched at view time: no external scripts, styles or images
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count('src="data:image/png;base64,') == sum(n_samples(r) for r in runs)
    assert "<title>two runs</title>" in html and "Comparison" in html
    assert "input | output | target" in html  # the translation grid's caption
    assert "training (G)" in html and "ganforge eval (G, n=100)" in html  # both kinds of eval rows
    assert "g_width: 8" in html  # the config
    assert 'type="range"' in html  # the slider over steps


def test_one_run_defaults_and_sample_cap(runs, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(runs[0], run)
    assert main(["report", str(run), "--max-samples", "2"]) == 0
    html = (run / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert f"2 of {n_samples(run)} sample grids shown" in html
    assert "step_000020" not in html and 'data-step="20"' in html and 'data-step="5"' in html  # first and last


@pytest.mark.parametrize("what,needle", [("missing", "does not exist"), ("empty", "not a ganforge run"),
                                         ("file", "not a directory"), ("out", "must end in .html")])
def test_report_errors_are_one_line(runs, tmp_path, capsys, what, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    argv = {"missing": [str(tmp_path / "nope")], "empty": [str(tmp_path / "empty")],
            "file": [str(tmp_path / "file")], "out": [str(runs[0]), "--out", str(tmp_path / "r.txt")]}[what]
    assert main(["report", *argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("ganforge: error:") and needle in err[0], err
