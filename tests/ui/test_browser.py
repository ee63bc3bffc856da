"""The page in a real headless browser (Debian's chromium + chromium-driver, driven by selenium):
upload, swap with the classical model, watch it finish, download the result, and check its label."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facedancer.io import VideoReader, read_image, read_label

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless browser: apt-get install chromium chromium-driver (Debian) to run the page's tests",
)
#: flags that work in a container as root with no network: no sandbox, no GPU, nothing fetched in the background
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="facedancer-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def swap_in_page(browser, server: str, source: Path, target: Path, reference: Path | None = None, **fields: str) -> str:
    """Fill the page's form, press Swap, and wait for the result or the error: the status line."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    Select(browser.find_element(By.ID, "model")).select_by_value("classical")
    browser.find_element(By.CSS_SELECTOR, "#pairs .source").send_keys(str(source))
    if reference is not None:
        Select(browser.find_element(By.ID, "faces")).select_by_value("reference")
        browser.find_element(By.CSS_SELECTOR, "#pairs .reference").send_keys(str(reference))
    browser.find_element(By.ID, "target").send_keys(str(target))
    for name, value in fields.items():
        browser.find_element(By.ID, name).send_keys(value)
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 120).until(
        ec.any_of(
            ec.visibility_of_element_located((By.ID, "result")), ec.visibility_of_element_located((By.ID, "error"))
        )
    )
    error = browser.find_element(By.ID, "error")
    return error.text if error.is_displayed() else browser.find_element(By.ID, "state").text


def download(browser, downloads: Path, name: str) -> Path:
    from selenium.webdriver.common.by import By

    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == name
    link.click()
    path = downloads / name
    deadline = time.monotonic() + 30
    while not path.is_file() or any(downloads.glob("*.crdownload")):
        assert time.monotonic() < deadline, list(downloads.iterdir())
        time.sleep(0.1)
    return path


def test_image_swap_in_the_page(browser, server, downloads, pair):
    from selenium.webdriver.common.by import By

    status = swap_in_page(browser, server, *pair)
    assert status == "Done: 1 face swapped in 1 frame.", status
    shown = browser.find_element(By.ID, "result-media")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", shown) == 250
    label = browser.find_element(By.ID, "label").text
    assert "labelled as synthetic media" in label and "compositeSynthetic" in label and "model: classical" in label
    path = download(browser, downloads, "Adrien_Brody_0001-swapped.jpg")
    assert read_image(path).shape == (250, 250, 3)
    assert read_label(path).model == "classical"


def test_video_swap_in_the_page(browser, server, downloads, pair, clip):
    status = swap_in_page(browser, server, pair[0], clip, max_frames="5")
    assert status == "Done: 5 faces swapped in 5 frames.", status
    path = download(browser, downloads, "5-swapped.mp4")
    with VideoReader(path) as reader:
        assert sum(1 for _ in reader) == 5
    assert read_label(path).model == "classical"


def test_reference_face_in_the_page(browser, server, pair):
    assert swap_in_page(browser, server, *pair, reference=pair[1]) == "Done: 1 face swapped in 1 frame."
    # nobody in the target looks like the reference: the CLI's one line, and nothing to download
    status = swap_in_page(browser, server, *pair, reference=pair[0])
    assert status.startswith("error: nothing swapped in Adrien_Brody_0001.jpg: no face looks like the reference"), (
        status
    )


def test_errors_show_the_one_line_message(browser, server, pair, bad_uploads):
    status = swap_in_page(browser, server, pair[0], bad_uploads["not-an-image"])
    assert status.startswith("error: cannot read image notes.jpg: not an image in a supported format"), status
