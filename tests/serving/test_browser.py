"""The web page end to end in headless Chromium (Debian's chromium and chromium-driver).

`make test` installs both when missing; the browser is driven by selenium through
/usr/bin/chromedriver, so nothing is downloaded.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1600",
]


@pytest.fixture
def browser(tmp_path):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{', '.join(missing)} missing: `make test` installs Debian's chromium"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shown_png(driver, element_id: str, mode: str = "L") -> Image.Image:
    """The pixels an <img> shows, read back through a canvas (blob URLs are page-local)."""
    data_url = driver.execute_script(
        """
        const img = document.getElementById(arguments[0]);
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        c.getContext('2d').drawImage(img, 0, 0);
        return c.toDataURL('image/png');
        """,
        element_id,
    )
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert(mode)


def loaded(element_id: str):
    return lambda d: d.execute_script(
        "const i = document.getElementById(arguments[0]);"
        "return !i.hidden && i.complete && i.naturalWidth > 0;",
        element_id,
    )


def test_page_generates_explores_and_reconstructs(served, browser):
    wait = WebDriverWait(browser, 20)
    browser.get(served + "/")
    wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    assert browser.title == "genmodels gallery"
    assert "gan: ok" in browser.find_element(By.ID, "health").text

    # choose a model, ask for 9 images: the grid appears
    Select(browser.find_element(By.ID, "generate-model")).select_by_value("gan")
    n = browser.find_element(By.ID, "generate-n")
    n.clear()
    n.send_keys("9")
    browser.find_element(By.ID, "generate-btn").click()
    wait.until(loaded("generate-img"))
    grid = shown_png(browser, "generate-img")
    assert grid.size == (3 * 30 + 2, 3 * 30 + 2)
    assert np.asarray(grid).std() > 0  # real samples, not a blank
    assert "seed" in browser.find_element(By.ID, "generate-info").text

    assert not browser.find_element(By.ID, "class-picker").is_displayed()
    # the cGAN shows a class picker
    Select(browser.find_element(By.ID, "generate-model")).select_by_value("cgan")
    assert browser.find_element(By.ID, "class-picker").is_displayed()
    classes = Select(browser.find_element(By.ID, "generate-class"))
    assert [o.text for o in classes.options][1:4] == ["T-shirt/top", "Trouser", "Pullover"]
    classes.select_by_value("3")
    browser.find_element(By.ID, "generate-btn").click()
    wait.until(lambda d: "cgan" in d.find_element(By.ID, "generate-info").text)

    # the 2-D explorer: the image is decoded at start, then again after each move
    assert browser.find_element(By.ID, "explorer-section").is_displayed()
    Select(browser.find_element(By.ID, "explorer-model")).select_by_value("vae2")  # the prior
    img = browser.find_element(By.ID, "latent-img")
    wait.until(lambda d: int(img.get_attribute("data-updates")) >= 2)
    wait.until(lambda d: d.execute_script("return document.getElementById('latent-img').complete"))
    before = np.asarray(shown_png(browser, "latent-img"), dtype=np.int16)
    updates = int(img.get_attribute("data-updates"))
    canvas = browser.find_element(By.ID, "latent-canvas")
    # drag from near the top-left corner towards the bottom right of the plane
    ActionChains(browser).move_to_element_with_offset(
        canvas, -100, -100
    ).click_and_hold().move_by_offset(60, 60).move_by_offset(120, 120).release().perform()
    wait.until(lambda d: int(img.get_attribute("data-updates")) > updates)
    wait.until(lambda d: img.get_attribute("data-z") not in (None, "0.00,0.00"))
    text = browser.find_element(By.ID, "latent-z").text
    x, y = (float(v) for v in text.removeprefix("z = (").rstrip(")").split(","))
    assert x > 0.5 and y < -0.5  # bottom right of the plane: z1 > 0, z2 < 0
    wait.until(lambda d: d.execute_script("return document.getElementById('latent-img').complete"))
    after = np.asarray(shown_png(browser, "latent-img"), dtype=np.int16)
    assert np.abs(after - before).max() > 0, "the decoded image did not change"

    # pick a generated sample and reconstruct it with the autoencoder
    Select(browser.find_element(By.ID, "image-model")).select_by_value("ae")
    assert Select(browser.find_element(By.ID, "image-action")).first_selected_option.text == (
        "reconstruct"
    )
    browser.find_element(By.ID, "image-sample").click()
    wait.until(loaded("image-input"))
    browser.find_element(By.ID, "image-run").click()
    wait.until(loaded("image-output"))
    assert shown_png(browser, "image-output").size == (28, 28)
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None


def shown_width(driver, element_id: str) -> float:
    return driver.execute_script(
        "return document.getElementById(arguments[0]).getBoundingClientRect().width", element_id
    )


def test_autoencoder_plane_upscaled_sample_and_offline_api_docs(served, browser):
    wait = WebDriverWait(browser, 20)
    browser.get(served + "/")
    wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))

    # the autoencoder's plane spans its codes' range, recorded at export; it starts centred
    explorer = Select(browser.find_element(By.ID, "explorer-model"))
    assert {o.get_attribute("value") for o in explorer.options} == {"ae2", "vae2"}
    explorer.select_by_value("ae2")
    img = browser.find_element(By.ID, "latent-img")
    wait.until(lambda d: img.get_attribute("data-z") == "1.00,1.50")
    assert browser.find_element(By.ID, "latent-range").text == "[-4.00, 6.00] \u00d7 [0.50, 2.50]"
    canvas = browser.find_element(By.ID, "latent-canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, 0, 0).click_and_hold().move_by_offset(
        110, 110
    ).release().perform()  # to the bottom-right corner
    wait.until(lambda d: img.get_attribute("data-z") != "1.00,1.50")
    x, y = (float(v) for v in img.get_attribute("data-z").split(","))
    assert 5.0 < x <= 6.0 and 0.5 <= y < 0.8

    # a generated sample (28x28) is brought down to the 2x upscaler's input, 14x14, and its
    # output (28x28) is shown larger than that input
    Select(browser.find_element(By.ID, "image-model")).select_by_value("srgan")
    browser.find_element(By.ID, "image-sample").click()
    wait.until(loaded("image-input"))
    browser.find_element(By.ID, "image-run").click()
    wait.until(loaded("image-output"))
    assert shown_png(browser, "image-input").size == (14, 14)
    assert shown_png(browser, "image-output").size == (28, 28)
    assert "brought down to 14 x 14" in browser.find_element(By.ID, "image-info").text
    wait.until(lambda d: shown_width(d, "image-output") > 1.5 * shown_width(d, "image-input"))

    # FastAPI's API docs render with no network beyond this service
    browser.get(served + "/docs")
    wait.until(lambda d: d.execute_script("return document.querySelectorAll('.opblock').length"))
    assert "/generate/{name}" in browser.find_element(By.ID, "swagger-ui").text


def test_page_upscales_and_translates_a_colour_photo(served_rgb, browser, tmp_path):
    photo = tmp_path / "photo.jpg"
    pixels = np.zeros((24, 36, 3), np.uint8)
    pixels[:, :12, 0], pixels[:, 12:24, 1], pixels[:, 24:, 2] = 220, 200, 180  # red, green, blue
    Image.fromarray(pixels).save(photo, quality=95)
    wait = WebDriverWait(browser, 20)
    browser.get(served_rgb + "/")
    wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    browser.find_element(By.ID, "image-file").send_keys(str(photo))
    wait.until(loaded("image-input"))

    Select(browser.find_element(By.ID, "image-model")).select_by_value("photo_sr")
    browser.find_element(By.ID, "image-run").click()
    wait.until(loaded("image-output"))
    upscaled = np.asarray(shown_png(browser, "image-output", "RGB"), dtype=np.int16)
    assert upscaled.shape == (48, 72, 3)  # 2x the photo, in colour
    spread = np.abs(upscaled - upscaled.mean(axis=2, keepdims=True)).mean()
    assert spread > 5, "the output lost its colour"

    Select(browser.find_element(By.ID, "image-model")).select_by_value("photo2edges")
    assert Select(browser.find_element(By.ID, "image-action")).first_selected_option.text == (
        "translate"
    )
    browser.find_element(By.ID, "image-run").click()
    wait.until(lambda d: "32" in str(d.execute_script(
        "return document.getElementById('image-output').naturalWidth")))  # fmt: skip
    translated = shown_png(browser, "image-output", "RGB")
    assert translated.size == (32, 32)  # brought to the size the model learned from
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
