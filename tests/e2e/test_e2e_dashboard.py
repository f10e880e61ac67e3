#!/usr/bin/env python3
"""test_e2e_dashboard — the web dashboard, used the way a person uses it.

A real farm (Redis, coordinator with --http, two workers) renders a job of
a few seconds while Debian's chromium, headless and driven by selenium,
opens the dashboard:

- the jobs page shows the job with a progress bar whose value increases
  between two reads taken a couple of seconds apart;
- the workers page lists both workers;
- the overview draws its charts (Chart.js served by the coordinator) and
  its cards; the job page shows the segment timeline and, once done, a
  link to the output;
- the browser console holds no JavaScript error on any page.

A screenshot of each page is saved under <build>/test-artifacts/dashboard/.
"""

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

suite = farm.Suite("test_e2e_dashboard")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def console_errors(drv):
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def wait_js(drv, script, timeout=20):
    """Poll a JavaScript expression until it is truthy; its value or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = drv.execute_script("return " + script)
        if v:
            return v
        time.sleep(0.1)
    return None


def test_dashboard():
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        suite.fail("chromium and chromium-driver are installed (scripts/setup.sh installs them)")
        return
    shots = os.path.join(suite.bin, "test-artifacts", "dashboard")
    shutil.rmtree(shots, ignore_errors=True)
    os.makedirs(shots)
    port = farm.free_ports(1)[0]
    args = ["--http", f"127.0.0.1:{port}", "--metrics-interval-ms", "500"]
    with suite.farm(workers=2, capacity=1, name="dashboard", coordinator_args=args) as f:
        # About 8 s on two workers: long enough to watch it move.
        spec = farm.synthetic_spec("dash-job", f.out("dash.mp4"), frames=200, width=64,
                                   height=64, segment_frames=20, overlap_frames=4, cost_ms=70)
        job = f.submit(spec)
        base = f"http://127.0.0.1:{port}/"
        drv = browser()
        try:
            errors = []

            def page(name, route, ready):
                drv.get(base + route)
                ok = wait_js(drv, ready)
                suite.check(ok, f"{name} page shows its content", ready)
                drv.save_screenshot(os.path.join(shots, f"{name}.png"))
                errors.extend((name, e["message"]) for e in console_errors(drv))
                return ok

            bar = f"document.querySelector('progress.job-progress[data-job=\"{job}\"]')"
            page("jobs", "#/jobs", bar)
            v1 = wait_js(drv, f"{bar} && {bar}.value > 0 && {bar}.value < 1 && {bar}.value")
            time.sleep(2.5)
            v2 = drv.execute_script(f"return {bar} && {bar}.value")
            print(f"   progress read twice: {v1} then {v2}")
            suite.check(v1 is not None and v2 is not None and v2 > v1,
                        "the job's progress bar increases between two reads", (v1, v2))
            row = drv.find_element(By.CSS_SELECTOR, f"tr[data-job=\"{job}\"]").text
            suite.check("running" in row, "the job's row says it is running", row)
            drv.save_screenshot(os.path.join(shots, "jobs.png"))

            page("workers", "#/workers",
                 "document.querySelectorAll('tr[data-worker]').length >= 2")
            names = [e.get_attribute("data-worker")
                     for e in drv.find_elements(By.CSS_SELECTOR, "tr[data-worker]")]
            suite.equal(sorted(names), ["w0", "w1"], "the worker list shows both workers")
            busy = wait_js(drv, "[...document.querySelectorAll('tr[data-worker]')]"
                                ".some(r => r.textContent.includes('dash-job'))", 10)
            suite.check(busy, "the worker list shows what a worker renders")

            page("overview", "#/",
                 "document.querySelectorAll('#cards .card').length >= 5 && "
                 "document.querySelectorAll('canvas').length == 4")
            suite.check(drv.execute_script("return typeof window.Chart === 'function'"),
                        "Chart.js is served by the coordinator and loaded")
            drawn = wait_js(drv, "window.Chart && Object.values(Chart.instances)"
                                 ".some(c => c.data.labels.length > 0)", 15)
            suite.check(drawn, "the overview's charts have data points")
            drv.save_screenshot(os.path.join(shots, "overview.png"))

            rc, err = f.wait(job, 90)
            suite.check(rc == 0, "the job finishes", err)
            page("job", f"#/job/{job}", "document.getElementById('output-link')")
            nseg = len(drv.find_elements(By.CSS_SELECTOR, "#timeline .tl-row"))
            st = f.status(job)
            suite.equal(nseg, st.get("segments"), "the timeline has a row per segment")
            labels = drv.execute_script(
                "return [...document.querySelectorAll('#timeline .tl-label')].map(e => e.textContent)")
            suite.check(all(" w0" in s or " w1" in s for s in labels),
                        "each timeline row names its worker", labels)
            href = drv.find_element(By.ID, "output-link").get_attribute("href")
            suite.check(href.endswith(f"/api/jobs/{job}/output"), "the job page links the output",
                        href)
            errors.extend(("job", e["message"]) for e in console_errors(drv))
            suite.check(not errors, "no JavaScript error in the console on any page",
                        json.dumps(errors, indent=1))
            for name in ("jobs", "workers", "overview", "job"):
                p = os.path.join(shots, f"{name}.png")
                suite.check(os.path.getsize(p) > 5000, f"screenshot {name}.png saved", p)
        finally:
            drv.quit()


suite.case(test_dashboard)
sys.exit(suite.finish())
