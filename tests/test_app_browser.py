"""The app in a real browser: Playwright driving Debian's headless Chromium.

Uploads a video, types an expression, runs it, checks that the result video plays
(duration > 0) and that the zip downloads; then clicks every example and checks that each shows
its own result (with the model it was made for) and no output shows an error; saves a
screenshot to tests/output/.
"""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def _segmenting_in_browser(tmp_path):
    """The app with a tiny checkpoint, served; a Chromium page on it with a 5-frame video and
    two expressions, just after pressing Segment: yields ``(app, page)``."""
    from playwright.sync_api import sync_playwright

    app = import_app(make_checkpoint(tmp_path))
    video = make_video(tmp_path, frames=5)
    app.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(app.demo.local_url, wait_until="domcontentloaded")
            page.locator("#video-in input[type=file]").set_input_files(str(video))
            page.locator("#expressions textarea").fill("the man in the red shirt\nthe black dog")
            page.get_by_role("button", name="Segment").click()
            yield app, page
            browser.close()
    finally:
        app.demo.close()


def test_app_in_a_real_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))

    with _segmenting_in_browser(tmp_path) as (app, page):
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


def _textbox_value(page, elem_id: str) -> str:
    return page.evaluate(f"() => document.querySelector('#{elem_id} textarea')?.value ?? ''")


def test_click_correction_in_a_real_browser(tmp_path, monkeypatch):
    """Click on the inspector's Original picture, press "Re-run with clicks": the final-mask panel
    shows what segment_video gives for that click (and not what it showed before)."""
    import json

    import numpy as np

    from mpg_sam2.app.results import inspect_frame
    from mpg_sam2.pipeline.clicks import Correction
    from mpg_sam2.pipeline.segmentation import SegmentationOptions, segment_video

    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    with _segmenting_in_browser(tmp_path) as (app, page):
        page.wait_for_function("() => document.querySelector('#panel-original img') !== null", timeout=180_000)
        before = Path(_textbox_value(page, "inspector-key"))
        old_masks = np.unpackbits(np.load(before / "masks.npy")[1, 0], axis=-1, count=98).astype(bool)
        # A point on the object where the dog's mask of frame 0 is empty, near the middle.
        rows, cols = np.nonzero(~old_masks)
        nearest = np.argmin((rows - 31) ** 2 + (cols - 49) ** 2)
        x, y = int(cols[nearest]), int(rows[nearest])
        old_final = page.locator("#panel-final img").get_attribute("src")

        image = page.locator("#panel-original img").first
        box = image.bounding_box()
        natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural == [98, 62]  # the inspector shows the frames at their own size
        # Gradio's select maps a click back to the image's pixels this way (ImagePreview).
        scale = min(box["width"] / natural[0], box["height"] / natural[1], 1)
        left = (box["width"] - natural[0] * scale) / 2
        top = (box["height"] - natural[1] * scale) / 2
        image.click(position={"x": left + (x + 0.5) * scale, "y": top + (y + 0.5) * scale})
        page.wait_for_function("() => (document.querySelector('#clicks-key textarea')?.value ?? '[]') !== '[]'",
                               timeout=30_000)
        clicks = json.loads(_textbox_value(page, "clicks-key"))
        assert len(clicks) == 1 and clicks[0]["frame"] == 0 and clicks[0]["label"] == 1
        assert abs(clicks[0]["x"] - x) <= 1 and abs(clicks[0]["y"] - y) <= 1, (clicks, x, y)
        page.locator("#correct-expression").get_by_text("the black dog").click()
        page.locator("#rerun").click()
        page.wait_for_function(
            """(before) => { const t = document.querySelector('#inspector-key textarea');
                             const img = document.querySelector('#panel-final img');
                             return t && t.value && t.value !== before && img; }""",
            arg=str(before), timeout=180_000,
        )
        after = Path(_textbox_value(page, "inspector-key"))
        page.wait_for_function("(old) => document.querySelector('#panel-final img')?.src !== old",
                               arg=old_final, timeout=60_000)
        page.wait_for_timeout(500)

        pretrained = app.POOL.get(app.MODELS[0].source)
        point = (float(clicks[0]["x"]), float(clicks[0]["y"]), 1)
        expected = segment_video(np.load(before / "frames.npy"), ["the black dog"], pretrained.model,
                                 pretrained.tokenizer, options=SegmentationOptions(record_attention=True),
                                 corrections=[Correction(0, 0, (point,))]).expressions[0]
        new_masks = np.unpackbits(np.load(after / "masks.npy")[1], axis=-1, count=98).astype(bool)
        np.testing.assert_array_equal(new_masks, expected.masks)
        changed = expected.masks[0] != old_masks
        assert changed.any(), "the click changed nothing on its frame; pick another point"

        # Gradio serves a numpy panel as lossy WebP; the same encoder on the expected picture
        # gives the same bytes, so the comparison is exact.
        served = _served_image(page, "#panel-final img")
        want = _as_served(inspect_frame(after, 0)[2])
        was = _as_served(inspect_frame(before, 0)[2])
        np.testing.assert_array_equal(served, want)
        assert not np.array_equal(served[changed], was[changed])  # not the old mask where it changed
        assert "the black dog" in page.locator("#applied-clicks").inner_text()


def _served_image(page, selector: str):
    import base64
    import io

    import numpy as np
    from PIL import Image

    src = page.locator(selector).first.get_attribute("src")
    data = base64.b64decode(src.split(",", 1)[1]) if src.startswith("data:") else page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


def _as_served(image):
    """``image`` (uint8 [H, W, 3]) as Gradio encodes a numpy output image, decoded again."""
    import io

    import numpy as np
    from gradio.processing_utils import encode_pil_to_bytes
    from PIL import Image

    data = encode_pil_to_bytes(Image.fromarray(image), "webp")
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
