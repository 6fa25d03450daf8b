"""The review page settles a whole library by folder rules in a few clicks, and puts it back in one;
its compare view shows two pictures side by side with where they differ. Real Chromium, a real
``catalog review`` process, real photos from ../shared/data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from catalog.evaluation.originals import folder_rules_library
from tests.actions.test_settle import catalog, environment, snapshot, trash_files
from tests.conftest import PHOTOS, SHARED_DATA
from tests.review.test_review import browser, start_review  # noqa: F401 - a fixture

#: Where the README's screenshot of the compare view is written (when set).
SCREENSHOT = os.environ.get("CATALOG_COMPARE_SCREENSHOT")
#: A promise kept when the page has stopped scrolling (two frames in a row at one place).
SCROLL_SETTLED = """() => new Promise(done => {
  let last = -1;
  const tick = () => {
    if (scrollY === last) done();
    else { last = scrollY; requestAnimationFrame(() => requestAnimationFrame(tick)); }
  };
  tick();
})"""


@pytest.mark.slow
def test_a_thousand_groups_settled_by_folder_rules_in_a_few_clicks(tmp_path, browser):  # noqa: F811
    env = environment(tmp_path)
    root = tmp_path / "lib"
    counts = folder_rules_library(SHARED_DATA, root, 1000)
    db = tmp_path / "c.db"
    catalog(db, env, "index", "--methods", "exact", str(root))  # byte copies: exact finds them all
    before = snapshot(root)
    server, url = start_review(db, env, "--method", "exact")
    clicks = 0
    try:
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(url)
        assert page.locator("#remaining").inner_text() == "1000"

        def click(locator) -> None:  # type: ignore[no-untyped-def]
            nonlocal clicks
            clicks += 1
            locator.click()

        # Prefer Camera/: its name on a card, then the menu.
        click(page.locator('button.crumb:text-is("Camera")').first)
        with page.expect_navigation():
            click(page.locator('#folder-menu button[data-rule="prefer"]'))
        click(page.locator('button.crumb:text-is("WhatsApp")').first)
        with page.expect_navigation():
            click(page.locator('#folder-menu button[data-rule="avoid"]'))
        rules = page.locator("#rules .rule")
        assert [r.inner_text().split(" ")[0] for r in rules.all()] == ["prefer", "avoid"]
        # Every card in Camera/ is now the one kept, said so by the rule.
        first = page.locator("section.group").first
        assert first.locator("figure.keep .folder").get_attribute("title") == str(root / "Camera")
        # Apply to every group: the preview says what would happen before anything does.
        click(page.locator("#settle-all"))
        plan = page.locator("#preview .plan")
        plan.wait_for()
        said = plan.inner_text()
        moved = counts["camera"] + counts["camera"] // 3 + counts["backup_whatsapp"]
        assert said.startswith(f"{moved} files (")
        assert f"from {counts['camera'] + counts['backup_whatsapp']} of 1000 groups" in said
        assert f"{counts['whatsapp_only']} groups left undecided" in said
        assert "every image is in a folder to avoid" in page.locator("#preview .reasons").inner_text()
        assert snapshot(root) == before  # a preview touches nothing
        with page.expect_navigation(timeout=120000):
            click(page.locator("#preview-apply"))
        toast = page.locator("#toast")
        toast.wait_for(state="visible")
        assert toast.inner_text().startswith(f"{moved} files moved to the trash")
        assert page.locator("#remaining").inner_text() == str(counts["whatsapp_only"])
        # What is left: Camera/ whole, Backup/Old (kept over WhatsApp), the WhatsApp-only pictures.
        left = snapshot(root)
        assert {k for k in left if k.startswith("Camera/")} == {k for k in before if k.startswith("Camera/")}
        assert not any(k.startswith("Backup/Camera/") for k in left)
        assert sum(k.startswith("Backup/Old/") for k in left) == counts["backup_whatsapp"]
        assert sum(k.startswith("WhatsApp/") for k in left) == 2 * counts["whatsapp_only"]
        assert len(trash_files(env)) == moved
        assert clicks <= 10
        # One undo puts every file back.
        with page.expect_navigation(timeout=120000):
            click(toast.locator("button.undo"))
        assert page.locator("#remaining").inner_text() == "1000"
        assert clicks == 7
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert snapshot(root) == before  # byte for byte
    assert trash_files(env) == []


def caption_copy(source: Path, target: Path) -> tuple[float, float]:
    """A messenger-style copy with a caption bar added under the picture (white, black text), made
    smaller and re-encoded. Returns where the bar starts and ends, as fractions of the copy's height."""
    with Image.open(source) as img:
        img = img.convert("RGB")
        img.thumbnail((1600, 1600))
        width, height = img.size
        bar = height // 6
        copy = Image.new("RGB", (width, height + bar), "white")
        copy.paste(img, (0, 0))
        draw = ImageDraw.Draw(copy)
        draw.text((width // 20, height + bar // 3), "when you see it", fill="black", font_size=bar // 3)
        copy.thumbnail((1080, 1080))
        copy.save(target, quality=72)
    return height / (height + bar), 1.0


@pytest.mark.slow
def test_compare_view_shows_where_two_pictures_differ(tmp_path, browser):  # noqa: F811
    env = environment(tmp_path)
    root = tmp_path / "lib"
    (root / "Camera").mkdir(parents=True)
    (root / "WhatsApp").mkdir()
    source = PHOTOS / "Canon_EOS_20D_(1).jpg"
    shutil.copy2(source, root / "Camera" / "IMG_0001.jpg")
    top, bottom = caption_copy(source, root / "WhatsApp" / "IMG-20240101-WA0001.jpg")
    other = PHOTOS / "Nikon_D70.jpg"
    shutil.copy2(other, root / "Camera" / "DSC_0002.jpg")
    with Image.open(other) as opened:  # the same photo, a corner covered by a sticker
        img = opened.convert("RGB")
    w, h = img.size
    ImageDraw.Draw(img).ellipse((w * 0.62, h * 0.08, w * 0.92, h * 0.38), fill=(230, 40, 120))
    img.save(root / "WhatsApp" / "DSC_0002-sticker.jpg", quality=85)
    db = tmp_path / "c.db"
    catalog(db, env, "index", "--methods", "cnn", str(root))  # a caption bar moves every hash too far
    server, url = start_review(db, env, "--method", "cnn")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        assert page.locator("section.group").count() == 2
        # Groups of two use the width.
        card = page.locator("section.group figure").first.bounding_box()
        assert card is not None and card["width"] > 600
        group = page.locator("section.group", has=page.locator('.name:text-is("IMG-20240101-WA0001.jpg")'))
        group.locator("button.act-compare-group").click()
        compare = page.locator("#compare")
        page.wait_for_selector("#compare[data-ready]", timeout=60000)
        # Both pictures at full resolution, side by side.
        panes = compare.locator(".pane")
        assert panes.count() == 2
        page.wait_for_function(
            "Array.from(document.querySelectorAll('#compare img'))"
            ".every(i => i.complete && i.naturalWidth > 1000)"
        )
        # The caption bar is highlighted: the marks on the copy cover it.
        second = panes.nth(1)
        added = second.locator(".mark.added")
        assert added.count() >= 1
        image_box = second.locator("img").bounding_box()
        mark_box = added.first.bounding_box()
        assert image_box is not None and mark_box is not None
        bar_top = image_box["y"] + top * image_box["height"]
        bar_bottom = image_box["y"] + bottom * image_box["height"]
        assert mark_box["y"] <= bar_top + 0.02 * image_box["height"]
        assert mark_box["y"] + mark_box["height"] >= bar_bottom - 1
        assert mark_box["width"] >= 0.95 * image_box["width"]
        assert "not in the first" in compare.locator(".said").inner_text()
        assert panes.nth(0).locator(".mark").count() == 0  # nothing of the original is missing
        # Zoom and pan move both pictures together.
        box = second.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -600)
        transforms = compare.locator(".stage").evaluate_all("s => s.map(e => e.style.transform)")
        assert transforms[0] == transforms[1] and "scale(1)" not in transforms[0]
        page.keyboard.press("0")
        # The sticker: a changed region on both sides, where it is.
        page.keyboard.press("Escape")
        sticker = page.locator("section.group", has=page.locator('.name:text-is("DSC_0002-sticker.jpg")'))
        sticker.locator("button.act-compare-group").click()
        page.wait_for_selector("#compare[data-ready]", timeout=60000)
        changed = compare.locator(".pane").nth(1).locator(".mark.changed")
        assert changed.count() >= 1
        style = changed.first.get_attribute("style") or ""
        left = float(style.split("left: ")[1].split("%")[0]) / 100
        top_at = float(style.split("top: ")[1].split("%")[0]) / 100
        assert 0.55 < left < 0.7 and 0.02 < top_at < 0.15
        if SCREENSHOT:
            page.keyboard.press("Escape")
            group.locator("button.act-compare-group").click()
            page.wait_for_selector("#compare[data-ready]", timeout=60000)
            page.evaluate(SCROLL_SETTLED)  # the page behind scrolls smoothly to the group
            page.screenshot(path=SCREENSHOT)
    finally:
        server.terminate()
        server.wait(timeout=30)
