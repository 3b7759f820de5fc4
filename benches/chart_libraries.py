#!/usr/bin/env python3
"""How the explorer's chart library was picked: size, and time to draw 100,000 points.

Packs uPlot, dygraphs and Chart.js from npm into a temporary folder, draws the same
100,000-point series with each in headless Chromium (through chromedriver, as the
explorer's tests do), five times each, and prints a Markdown table for BENCHMARKS.md.
Needs npm, chromium and chromedriver. Run: python3 benches/chart_libraries.py
"""

import gzip
import json
import socket
import statistics
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

LIBRARIES = {
    # name: (npm package, file of the package, how a page draws with it)
    "uPlot 1.6.32": ("uplot@1.6.32", "package/dist/uPlot.iife.min.js", """
        const chart = new uPlot({width: 1200, height: 400, series: [{}, {stroke: 'blue'}]},
                                [Array.from(xs), Array.from(ys)], document.body);"""),
    "dygraphs 2.2.2": ("dygraphs@2.2.2", "package/dist/dygraph.min.js", """
        const div = document.createElement('div');
        div.style.cssText = 'width:1200px;height:400px'; document.body.appendChild(div);
        const chart = new Dygraph(div, Array.from(xs, (x, i) => [new Date(x * 1e3), ys[i]]),
                                  {labels: ['t', 'y']});"""),
    "Chart.js 4.6.1": ("chart.js@4.6.1", "package/dist/chart.umd.min.js", """
        const box = document.createElement('div');
        box.style.cssText = 'width:1200px;height:400px'; document.body.appendChild(box);
        const canvas = document.createElement('canvas'); box.appendChild(canvas);
        const chart = new Chart(canvas, {type: 'line',
          data: {datasets: [{data: Array.from(xs, (x, i) => ({x, y: ys[i]})), pointRadius: 0, borderWidth: 1}]},
          options: {animation: false, parsing: false, normalized: true, maintainAspectRatio: false,
                    scales: {x: {type: 'linear'}}}});"""),
}

PAGE = """<!doctype html><html><body><script src="lib.js"></script><script>
const N = 100000, xs = new Float64Array(N), ys = new Float64Array(N);
for (let i = 0; i < N; i++) { xs[i] = 1735689600 + i * 60; ys[i] = Math.sin(i / 500) * 10 + (i % 7) - 3; }
const t0 = performance.now();
{DRAW}
const t1 = performance.now();
requestAnimationFrame(() => requestAnimationFrame(() => {
  document.title = JSON.stringify({construct: t1 - t0, painted: performance.now() - t0});
}));
</script></body></html>"""


def webdriver(port, method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["value"]


def main():
    work = Path(tempfile.mkdtemp(prefix="chart-libraries-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    session = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        session = webdriver(port, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                            "--window-size=1280,800"]}}}})["sessionId"]
        print("| library | minified | gzipped | construct p50 | to the second frame p50 |")
        print("|---|---:|---:|---:|---:|")
        for name, (package, file, draw) in LIBRARIES.items():
            folder = work / package.split("@")[0]
            folder.mkdir()
            subprocess.run(["npm", "pack", "--silent", package], cwd=folder, check=True,
                           stdout=subprocess.DEVNULL)
            with tarfile.open(next(folder.glob("*.tgz"))) as tar:
                script = tar.extractfile(file).read()
            (folder / "lib.js").write_bytes(script)
            (folder / "index.html").write_text(PAGE.replace("{DRAW}", draw))
            runs = []
            for _ in range(5):
                webdriver(port, "POST", f"/session/{session}/url",
                          {"url": (folder / "index.html").as_uri()})
                for _ in range(100):
                    title = webdriver(port, "POST", f"/session/{session}/execute/sync",
                                      {"script": "return document.title", "args": []})
                    if title:
                        break
                    time.sleep(0.05)
                runs.append(json.loads(title))
            construct = statistics.median(r["construct"] for r in runs)
            painted = statistics.median(r["painted"] for r in runs)
            print(f"| {name} | {len(script) / 1024:.0f} KiB | {len(gzip.compress(script)) / 1024:.0f} KiB "
                  f"| {construct:.0f} ms | {painted:.0f} ms |")
    finally:
        # Ending the session closes Chromium; stopping the driver alone would leave it.
        if session:
            webdriver(port, "DELETE", f"/session/{session}")
        driver.terminate()


if __name__ == "__main__":
    main()
