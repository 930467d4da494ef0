"""`report RUN_DIR`: a self-contained report.html with every section, loaded in a real
headless browser (Debian's chromium through selenium): no console errors, every image
renders, and a screenshot is kept in build/test-artifacts/."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from selfdistill.cli import main

DEC = {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "min_p": 0.0, "max_tokens": 16, "n": 2, "seed": 0}
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    """A finished run of the whole protocol on the tiny model: both grids, the comparison,
    the analysis and the report."""
    root = tmp_path_factory.mktemp("report")
    grid = {"top_k": 20, "top_p": 0.9, "min_p": 0.0, "max_tokens": 16, "n": 2, "seed": 0}
    cfg = {"out": str(root / "run"), "model": str(tiny_model_dir), "train_problems": "humaneval[3:]",
           "train_limit": 4, "eval_problems": "humaneval[:3]", "batch_size": 4,
           "sample_decoding": {**DEC, "n": 1}, "base_eval": {**grid, "t_eval": [0.0, 1.0]},
           "ssd_eval": {**grid, "t_eval": [0.5, 1.0]}, "analysis_responses": 2,
           "analyze": {"bootstrap_samples": 50}, "note": "A demonstration with no statistical power.",
           "training": {"method": "full", "max_steps": 1, "global_batch_size": 2, "per_device_batch_size": 2,
                        "learning_rate": 1e-3, "min_learning_rate": 1e-4, "bf16": False},
           "bootstrap_samples": 100, "progress": False}
    (root / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(root / "run.yaml")]) == 0
    return root / "run"


def test_report_shows_every_section_and_report_rewrites_it_identically(run_dir, capsys):
    first = (run_dir / "report" / "report.html").read_text()
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report" / "report.html").read_text()
    assert page == first
    for heading in ("Headline", "Configuration and provenance", "pass@k against T_eval", "Best against best",
                    "The difference at each fixed T_eval", "Lock/fork diagnostics", "Training",
                    "Sampling statistics", "Responses side by side"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "no statistical power" in page and "cross-fitted" in page and "base top-1 mass &gt;= 0.9" in page
    # self-contained: every image inline, nothing fetched
    srcs = re.findall(r"src='([^']*)'", page)
    assert len(srcs) >= 6 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<pre>" in page and "&lt;" not in page.split("<pre>")[0][-50:]  # responses are escaped
    # report.json says what both renderings show, and the report's record names its inputs
    data = json.loads((run_dir / "report" / "report.json").read_text())
    assert data["headlines"] and data["analysis"]["rows"] and data["comparison"] and data["fixed_t_eval"]
    assert data["reading"] and data["reading"][0].startswith("Whether SSD helped")
    assert "<h2>What this run shows</h2>" in page
    record = json.loads((run_dir / "report" / "stage.json").read_text())
    assert set(record["inputs"]) == {"base_eval/T0", "base_eval/T1", "ssd_eval/T0.5", "ssd_eval/T1", "sample",
                                     "train", "compare", "analyze"}
    md = (run_dir / "report" / "report.md").read_text()
    assert "## Best against best" in md and data["headlines"][0] in md


def test_report_refuses_a_stage_whose_results_changed_after_it_finished(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    results = run / "base_eval" / "T1" / "results.json"
    results.write_text(results.read_text().replace('"correct": 0', '"correct": 1', 1))
    assert main(["report", str(run)]) == 2
    assert "base_eval/T1/results.json changed after the eval stage finished" in capsys.readouterr().err


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a `selfdistill run` directory" in capsys.readouterr().err


def _chromium():
    return shutil.which("chromium") and shutil.which("chromedriver")


@pytest.mark.skipif(not _chromium() and not os.environ.get("CI"),
                    reason="no chromium/chromedriver (scripts/install-browser.sh installs them; CI requires them)")
def test_report_renders_in_headless_chromium(run_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    main(["report", str(run_dir)])
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={run_dir.parent / 'chromium-profile'}", "--window-size=1280,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        driver.get((run_dir / "report" / "report.html").as_uri())
        assert driver.title.startswith("SSD report")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) >= 6
        broken = [i for i in images if not (i[1] and i[2] > 0 and i[3] > 0)]
        assert not broken, broken
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(height + 100, 16000))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        # the numbers the page shows are report.json's
        data = json.loads((run_dir / "report" / "report.json").read_text())
        shown = driver.execute_script(
            "return Array.from(document.querySelectorAll('#comparison tbody tr'))"
            ".map(r => Array.from(r.cells).map(c => c.textContent))")
        assert len(shown) == len(data["comparison"]) > 0
        for row, want in zip(shown, data["comparison"]):
            assert row[0] == want["subset"] and int(row[1]) == want["problems"] and int(row[2]) == want["k"]
            assert float(row[3]) == round(100 * want["base"], 1) and float(row[4]) == round(100 * want["ssd"], 1)
            assert row[6] == f"{want['wins']}/{want['losses']}/{want['ties']}"
        def table(table_id):
            return driver.execute_script(
                f"return Array.from(document.querySelectorAll('#{table_id} tbody tr'))"
                ".map(r => Array.from(r.cells).map(c => c.textContent))")

        best = table("best")
        assert [(r[0], r[1], float(r[2])) for r in best] == [
            (m, f["fold"], f["t_eval"]) for m, b in data["best"].items() for f in b["folds"]]
        curves = table("curves")
        assert [(r[0], r[1], float(r[2])) for r in curves] == [
            (m, t, round(100 * c["pass@1"], 1)) for m, cv in data["curves"].items() for t, c in cv.items()]
        fixed = table("fixed-t")
        assert [(float(r[0]), int(r[1]), float(r[2])) for r in fixed] == [
            (r["t_eval"], r["k"], round(100 * r["a"], 1)) for r in data["fixed_t_eval"]]
        analysis = table("analysis")
        assert [(r[0], r[1], int(r[2]), float(r[3].split()[0])) for r in analysis] == [
            (r["class"], r["model"], r["positions"], round(r["top1_mass"], 3)) for r in data["analysis"]["rows"]]
        headline = driver.execute_script("return document.querySelector('.headline').textContent")
        assert headline == data["headlines"][0]
        assert driver.execute_script("return document.getElementById('note').textContent") == data["note"]
        (ARTIFACTS / "report-images.json").write_text(json.dumps(images))
    finally:
        driver.quit()


def test_a_run_stopped_after_the_base_grid_gives_a_partial_report(tmp_path, tiny_model_dir, capsys):
    """A long run's report before it ends: the finished cells' curves, the SSD data and
    what has not run yet, said in report.json and in both renderings; the next `run`
    redoes it."""
    grid = {"top_k": 20, "top_p": 0.9, "min_p": 0.0, "max_tokens": 16, "n": 2, "seed": 0}
    cfg = {"out": str(tmp_path / "run"), "model": str(tiny_model_dir), "train_problems": "humaneval[3:]",
           "train_limit": 2, "eval_problems": "humaneval[:3]", "batch_size": 4,
           "sample_decoding": {**DEC, "n": 1}, "base_eval": {**grid, "t_eval": [0.0, 1.0]},
           "ssd_eval": {**grid, "t_eval": [0.5]}, "progress": False,
           "training": {"method": "full", "max_steps": 1, "global_batch_size": 2, "per_device_batch_size": 2,
                        "bf16": False}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["run", str(path), "--stop-after", "base_eval"]) == 0
    assert main(["report", str(run)]) == 0
    data = json.loads((run / "report" / "report.json").read_text())
    assert data["pending"] == ["ssd_eval/T0.5", "train", "compare", "analyze"]
    assert set(data["curves"]) == {"base"} and set(data["curves"]["base"]) == {"0", "1"}
    # the greedy cell counts as n identical responses, as in the comparison
    assert data["curves"]["base"]["0"]["pass@2"] == data["curves"]["base"]["0"]["pass@1"]
    base_t1 = json.loads((run / "base_eval" / "T1" / "results.json").read_text())
    assert data["curves"]["base"]["1"]["pass@1"] == base_t1["metrics"]["pass@1"]
    assert data["data"]["generated"] == 2 and data["loss"] is None and data["analysis"] is None
    assert not data["headlines"] and not data["comparison"]
    assert data["power"].startswith("Partial report: ssd_eval (T 0.5), train, compare, analyze not finished")
    assert data["stages"]["train"]["record"] is None and data["stages"]["sample"]["record"]
    record = json.loads((run / "report" / "stage.json").read_text())
    assert record["complete"] and record["info"]["pending"] == data["pending"]
    page = (run / "report" / "report.html").read_text()
    md = (run / "report" / "report.md").read_text()
    # not run yet: best against best, the fixed-T_eval differences, the diagnostics, the
    # training, and (the page alone) the responses side by side
    assert "Partial report" in md and md.count("Not run yet") == 4
    assert "Partial report" in page and page.count("Not run yet") == 5
    assert "<table id='curves'>" in page and "<table id='data'>" in page and "<table id='best'>" not in page
    # the run goes on from here: the partial report is not taken for a finished one
    capsys.readouterr()
    assert main(["run", str(path), "--plan"]) == 0
    plan = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert plan["report"] == "stale" and plan["base_eval"] == "fresh" and plan["train"] == "missing"


def _row(subset, k, base, ssd, low, high):
    return {"subset": subset, "k": k, "problems": 100, "base": base, "ssd": ssd, "delta": ssd - base,
            "low": low, "high": high, "reference_t_eval": "0.6", "model_t_eval": "1"}


def _analysis(lock_tail, lock_iv, fork_top1, fork_iv):
    rows = [{"class": c, "model": m, "positions": 10, "top1_mass": t1, "entropy": 1.0, "tail_mass_beyond_support": tail}
            for c, m, t1, tail in (("lock", "base", 0.97, 0.010), ("lock", "ssd", 0.98, 0.010 + lock_tail),
                                   ("fork", "base", 0.40, 0.05), ("fork", "ssd", 0.40 + fork_top1, 0.05))]
    return {"responses": 64, "rows": rows, "thresholds": {"lock": "base top-1 mass >= 0.9", "fork": "a fork"},
            "differences": {"lock": {"tail_mass_beyond_support": {"delta": lock_tail, "low": lock_iv[0], "high": lock_iv[1]}},
                            "fork": {"top1_mass": {"delta": fork_top1, "low": fork_iv[0], "high": fork_iv[1]}}}}


def test_the_reading_says_what_each_interval_says():
    from selfdistill.report import reading

    helped = reading({"comparison": [_row("overall", 1, 0.30, 0.34, 0.01, 0.07), _row("overall", 5, 0.45, 0.50, 0.02, 0.08),
                                     _row("easy", 1, 0.8, 0.8, -0.02, 0.02), _row("medium", 1, 0.2, 0.3, 0.05, 0.15),
                                     _row("hard", 1, 0.1, 0.05, -0.09, -0.01)],
                      "analysis": _analysis(-0.004, (-0.006, -0.002), -0.05, (-0.08, -0.02))})
    assert "34.0% against 30.0%, +4.0 points [+1.0, +7.0] over 100 problems: better than the base model" in helped[0]
    assert "(base 0.6, SSD 1)" in helped[0] and "pass@5 +5.0 points [+2.0, +8.0]" in helped[0]
    assert helped[1] == ("Where: SSD is ahead on medium (+10.0 points [+5.0, +15.0]); "
                         "behind on hard (-5.0 points [-9.0, -1.0]).")
    assert "the tail shrank, as SSD's mechanism predicts" in helped[2] and "0.0060 for SSD against 0.0100" in helped[2]
    assert "flatter, the plateau the mechanism predicts" in helped[2] and helped[2].startswith("Why, on 64 responses")

    unclear = reading({"comparison": [_row("overall", 1, 0.30, 0.31, -0.02, 0.04), _row("medium", 1, 0.2, 0.2, -0.1, 0.1),
                                      {**_row("hard", 1, 0.0, 0.0, None, None), "note": "no solved problems"}],
                       "analysis": _analysis(0.003, (0.001, 0.005), 0.01, (-0.01, 0.03))})
    assert "not distinguishable from the base model over these problems" in unclear[0]
    assert unclear[1] == "Where: no subset's pass@1 interval excludes zero; neither model solved a problem of: hard."
    assert "the tail grew, against the prediction" in unclear[2] and "the forks kept their spread" in unclear[2]
    assert reading({"comparison": [], "analysis": None}) == []  # a partial report says nothing it cannot show
