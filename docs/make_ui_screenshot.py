"""Render docs/ui.png: the ``facedancer ui`` page after a classical swap, in headless chromium.

The faces are public-domain photos that ship inside Python packages, not research data: scikit-image's
``astronaut.png`` (Eileen Collins, NASA) as the source and matplotlib's ``grace_hopper.jpg`` (US Navy) as
the target. Needs the ui and test extras, and Debian's chromium + chromium-driver::

    pip download scikit-image --no-deps -d /tmp/sk && unzip -o -j /tmp/sk/*.whl skimage/data/astronaut.png -d /tmp
    python docs/make_ui_screenshot.py /tmp/astronaut.png \
        "$(python -c 'from matplotlib import cbook; print(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))')"
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

OUT = Path(__file__).with_name("ui.png")
FLAGS = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
FLAGS += " --disable-component-update --disable-sync --hide-scrollbars --window-size=1180,1000"


def main(source: str, target: str) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "facedancer", "ui", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    url = server.stdout.readline().split()[2]  # "facedancer ui: http://127.0.0.1:PORT/  (Ctrl+C to stop)"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*FLAGS.split(), f"--user-data-dir={tempfile.mkdtemp()}"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        Select(browser.find_element(By.ID, "model")).select_by_value("classical")
        browser.find_element(By.CSS_SELECTOR, "#pairs .source").send_keys(source)
        browser.find_element(By.ID, "target").send_keys(target)
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "result").is_displayed())
        time.sleep(0.5)  # the image finishes painting
        raw = Path(tempfile.mkdtemp()) / "raw.png"
        browser.save_screenshot(str(raw))
    finally:
        browser.quit()
        server.terminate()
    # 128 colours keep a page of flat colours and one photo under 150 KB
    Image.open(raw).convert("RGB").quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        OUT, optimize=True
    )
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
