"""The app in a real browser: Playwright driving Debian's headless Chromium.

Uploads a video, types an expression, runs it, checks that the result video plays
(duration > 0) and that the zip downloads; then clicks every example and checks that each shows
its own result (with the model it was made for) and no output shows an error; saves a
screenshot to tests/output/.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from app_fixtures import import_app, make_checkpoint, make_video

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).parent / "output" / "app_screenshot.png"
# Flags for a closed network and root (see the machine notes): no sandbox, no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_available() -> bool:
    return Path(CHROMIUM).exists()


pytestmark = pytest.mark.skipif(
    not _browser_available() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed here (CI installs it: apt-get install chromium)",
)


def _video_src(page) -> str:
    return page.evaluate("() => { const v = document.querySelector('#side-by-side video'); return v ? v.src : ''; }")


def _click_example(page, example) -> None:
    before = _video_src(page)
    # Gradio shortens long labels with "...", so the label is found by its start.
    page.get_by_text(example.title[:40]).first.click()
    page.wait_for_function(
        """(before) => { const v = document.querySelector('#side-by-side video');
                         return v && v.src && v.src !== before && v.readyState >= 1 && v.duration > 0; }""",
        arg=before, timeout=300_000,
    )
    assert page.locator("#expressions textarea").input_value() == example.expressions
    stage = page.locator("#stage-times").inner_text()
    assert f"Model {Path(example.model_source).name}" in stage, stage
    playing = page.evaluate(
        """async () => { const v = document.querySelector('#side-by-side video');
                         v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 300));
                         return v.currentTime > 0; }"""
    )
    assert playing, f"the video of example {example.title!r} does not play"
    # The frame inspector follows the example's result.
    page.wait_for_function("() => document.querySelector('#panel-final img') !== null", timeout=60_000)
    errors = page.locator(".error, [data-testid='error']").all_inner_texts()
    assert not [e for e in errors if e.strip()], f"example {example.title!r} shows an error: {errors}"


def test_app_in_a_real_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    from playwright.sync_api import sync_playwright

    app = import_app(make_checkpoint(tmp_path))
    video = make_video(tmp_path, frames=5)
    app.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(app.demo.local_url, wait_until="domcontentloaded")
            page.locator("#video-in input[type=file]").set_input_files(str(video))
            page.locator("#expressions textarea").fill("the man in the red shirt\nthe black dog")
            page.get_by_role("button", name="Segment").click()

            result_video = page.locator("#side-by-side video")
            result_video.wait_for(state="attached", timeout=120_000)
            duration = page.wait_for_function(
                """() => { const v = document.querySelector('#side-by-side video');
                           return v && v.readyState >= 1 && v.duration > 0 ? v.duration : null; }""",
                timeout=60_000,
            ).json_value()
            assert duration > 0
            playing = page.evaluate(
                """async () => { const v = document.querySelector('#side-by-side video');
                                 v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 300));
                                 return v.currentTime > 0 && !v.paused; }"""
            )
            assert playing

            link = page.locator('#downloads a[download$=".zip"]').first
            link.wait_for(timeout=30_000)
            with page.expect_download() as download_info:
                link.click()
            saved = tmp_path / "download.zip"
            download_info.value.save_as(saved)
            with zipfile.ZipFile(saved) as archive:
                assert "manifest.json" in archive.namelist()

            for example in app.EXAMPLES:
                _click_example(page, example)

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            _assert_shows_served_image(page, "#panel-final img")
            browser.close()
    finally:
        app.demo.close()


def _assert_shows_served_image(page, selector: str) -> None:
    """What the browser paints for the inspector's final-mask panel is the image the app served
    (not a blank box, a broken image or a stale frame): a screenshot of the element, against
    the served PNG scaled as CSS ``object-fit: contain`` draws it, differs by less than 2 grey
    levels on average (measured 0.13; the same frame mirrored differs by 3.6)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    element = page.locator(selector).first
    src = element.get_attribute("src")
    if src.startswith("data:"):
        served_bytes = base64.b64decode(src.split(",", 1)[1])
    else:
        served_bytes = page.request.get(src).body()
    served = Image.open(io.BytesIO(served_bytes)).convert("RGB")
    shot = np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB"), dtype=np.float32)
    box_h, box_w = shot.shape[:2]
    scale = min(box_w / served.width, box_h / served.height)
    w, h = round(served.width * scale), round(served.height * scale)
    x0, y0 = (box_w - w) // 2, (box_h - h) // 2
    painted = shot[y0 : y0 + h, x0 : x0 + w]
    expected = np.asarray(served.resize((w, h), Image.BILINEAR), dtype=np.float32)
    # Gradio lays the label and the toolbar over the top of the image; compare below them.
    below = (slice(h // 4, h - 3), slice(3, w - 3))
    assert painted[below].std() > 5, "the final-mask panel is painted flat"
    difference = np.abs(painted[below] - expected[below]).mean()
    assert difference < 2, f"the final-mask panel shows another picture than the app served (mean difference {difference:.1f})"
