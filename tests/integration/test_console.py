"""The review console (console/, served at /console/) clicked through in headless Chromium against the
local stack: upload and review (with a reviewer's verdict on a pair), the catalogue with paging and a
confirmed delete, generation with its gallery, a regenerated type and the ZIP, the listings tab (the
migration's progress and last run, one listing before and after the split). Each flow leaves a
screenshot under build/console-screenshots/
and must pass axe-core with no serious or critical violation, with no script error and nothing blocked
by the page's Content-Security-Policy. Chromium and axe-core are installed by tests/browser if missing."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from opensearchpy import helpers
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from listing_vision.api.clients import ApiClients
from listing_vision.config import get_settings
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from local.console_site import CONSOLE_DIR
from local.stack import LocalStack
from tests.browser import BROWSER_WAIT_MS, CHROMIUM_ARGS, axe_source, chromium
from tests.demo_migration import migrated_demo_listing
from tests.integration.test_generation import earring_photo
from tests.integration.test_migration_progress import plan_by_hand
from tests.stores import settle

SCREENSHOTS = Path("build/console-screenshots")
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# What an uncaught script error or a CSP refusal says in the browser's console
PROBLEMS = re.compile(r"Content Security Policy|Refused to|Uncaught", re.IGNORECASE)


# Every browser test's waits (this module's fixtures serve test_console_sign_in.py too): one bound, set once
expect.set_options(timeout=BROWSER_WAIT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


@pytest.fixture
def keyed(local_stack: LocalStack) -> Iterator[tuple[str, str]]:
    """A second gateway in front of the stack that runs the authorizer (what LOCAL_AUTH=1 runs, as
    test_access.py does), and a client key holding blysk only: (its URL, the key)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        key = ApiClients().create(f"console-{uuid.uuid4().hex[:8]}", ("blysk",))[0]
        server = local_stack.api_gateway(auth=True).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}", key
        server.shutdown()
        server.server_close()
    get_settings.cache_clear()


@pytest.fixture
def console(browser: Browser, local_stack: LocalStack) -> Iterator[Callable[..., Page]]:
    """Opens the console in a fresh context; afterwards, no page had a script error or a CSP refusal."""
    problems: list[str] = []
    contexts = []

    def open_console(viewport: dict[str, int] = LAPTOP, url: str | None = None) -> Page:
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        context.set_default_timeout(BROWSER_WAIT_MS)  # clicks, goto, wait_for_function: the same bound
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: PROBLEMS.search(message.text) and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{url or local_stack.url}/console")  # redirected to /console/
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield open_console
    for context in contexts:
        context.close()
    assert problems == []


def accessible(page: Page, axe: str) -> None:
    """axe-core, injected through the browser's own evaluation (the page's CSP admits no inline script)."""
    page.evaluate(axe)
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    assert [v for v in violations if v["impact"] in ("serious", "critical")] == []


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def store(local_stack: LocalStack, data: bytes, website: str, url: str = "", key: str = "") -> dict[str, Any]:
    answer = requests.post(
        f"{url or local_stack.url}/image_similarity_search",
        timeout=30,
        headers={"x-api-key": key} if key else {},
        files={"file": ("piece.jpg", data, "image/jpeg")},
        data={"check_duplicate": "no", "website": website},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_console_is_static_with_a_strict_policy_and_no_secret(local_stack: LocalStack) -> None:
    # When the console's address is asked for without its slash, and then its page
    moved = requests.get(f"{local_stack.url}/console", timeout=10, allow_redirects=False)
    page = requests.get(f"{local_stack.url}/console/", timeout=10)
    # Then it redirects to the page, served with a policy admitting no inline or foreign script
    assert moved.status_code == 308 and moved.headers["Location"] == "/console/"
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
    assert "unsafe" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    # And no file of the console holds an inline script, a handler attribute or anything like a key
    for path in CONSOLE_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)|\son\w+=|<style|sk-[A-Za-z0-9]|AKIA[0-9A-Z]{12}", text), path


def test_upload_a_new_photo_then_its_duplicate(
    console: Callable[..., Page], local_stack: LocalStack, axe: str, provider_env: Callable[..., None]
) -> None:
    provider_env(CAPTION_PROVIDER="offline")
    # a render no other test stores (synthetic earrings are near-duplicates of one another)
    photo = (Path(__file__).parents[1] / "data" / "jewelry" / "heart-pendant@rose.jpg").read_bytes()
    requests.delete(  # Given the photo is not in the catalogue (an earlier run of this module may have left it)
        f"{local_stack.url}/images/{hashlib.sha256(photo).hexdigest()}", params={"website": "alya"}, timeout=10
    )
    page = console()
    upload = {"name": "heart.jpg", "mimeType": "image/jpeg", "buffer": photo}
    # When a new photo is uploaded to be captioned as a necklace
    page.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files(upload)
    page.get_by_label("Caption it as").select_option("necklace")
    page.get_by_role("button", name="Check the photo").click()
    # Then the verdict is "new", with the caption's fields
    result = page.locator("#review-result")
    expect(result.get_by_role("heading")).to_have_text("New photo: stored")
    expect(result.get_by_role("definition").first).not_to_be_empty()
    expect(result.locator("dt")).to_contain_text(["Name", "Quality", "Colour"])
    screenshot(page, "review-new")
    accessible(page, axe)
    # When the same photo is uploaded again, for the duplicate check only
    page.get_by_label("Caption it as").select_option("")
    page.get_by_role("button", name="Check the photo").click()
    # Then it is a duplicate, the upload and the match side by side with the kind of match and distance
    expect(result.get_by_role("heading")).to_have_text(re.compile(r"^Duplicate: \d+ match"))
    pair = result.locator(".pair").first
    expect(pair.locator("img")).to_have_count(2)
    expect(pair.locator("figcaption").nth(1)).to_have_text(re.compile(r"Match 1: exact · distance 0\.000"))
    # And the same bytes are no pair to judge: no verdict buttons
    expect(pair.get_by_role("group", name="Your verdict on match 1")).to_contain_text("The same photo")
    screenshot(page, "review-duplicate")
    accessible(page, axe)
    # When a re-encoded copy is checked, a pair with the reviewer's two buttons and no verdict yet
    copy = reencoded(photo)
    page.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files({**upload, "name": "copy.jpg", "buffer": copy})
    page.get_by_role("button", name="Check the photo").click()
    verdicts = result.locator(".pair").first.get_by_role("group", name="Your verdict on match 1")
    expect(verdicts.locator(".status")).to_have_text("No verdict yet")
    # And "Not a duplicate" is pressed from the keyboard, then "Same piece" clicked
    verdicts.get_by_role("button", name="Not a duplicate").focus()
    page.keyboard.press("Enter")
    expect(verdicts.locator(".status")).to_have_text("Recorded: Not a duplicate")
    expect(verdicts.get_by_role("button", name="Not a duplicate")).to_have_attribute("aria-pressed", "true")
    # When the reviewer presses "Not a duplicate" again, then "Same piece", before any answer (in one turn
    # of the page's event loop), and the first press's request is held back until every other one sent has
    # been answered (the page's fetch waits on a promise)
    page.evaluate(HOLD_FIRST_PUT)
    verdicts.evaluate(
        """group => ["Not a duplicate", "Same piece"].forEach(name =>
            [...group.querySelectorAll("button")].find(button => button.textContent === name).click())"""
    )
    page.wait_for_function("() => window.sent === window.answered + 1")
    page.evaluate("window.release()")
    # Then once both have answered, the page shows the last one pressed, and the API holds that one only on
    # the pair (sent at once, "Same piece" was recorded first, then overwritten by the late "Not a duplicate")
    page.wait_for_function("() => window.answered === 2")
    expect(verdicts.locator(".status")).to_have_text("Recorded: Same piece")
    expect(verdicts.get_by_role("button", name="Not a duplicate")).to_have_attribute("aria-pressed", "false")
    copy_id, photo_id = hashlib.sha256(copy).hexdigest(), hashlib.sha256(photo).hexdigest()
    on_copy = requests.get(f"{local_stack.url}/verdicts", params={"website": "alya", "image_id": copy_id}, timeout=10)
    assert [(v["matched_image_id"], v["verdict"]) for v in on_copy.json()["verdicts"]] == [(photo_id, "same_piece")]
    screenshot(page, "review-verdict")
    accessible(page, axe)
    # And checking the copy again shows the verdict recorded (read from the new answer: the one on the
    # page already says so, so wait for it to be replaced first)
    shown = result.locator(".verdicts .status").first.element_handle()
    page.get_by_role("button", name="Check the photo").click()
    shown.wait_for_element_state("hidden")  # detached by the new check
    expect(page.locator("#review-result .verdicts .status").first).to_have_text("Recorded: Same piece")
    # And on a phone the same verdict fits the screen's width
    phone = console(PHONE)
    phone.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files(upload)
    phone.get_by_role("button", name="Check the photo").click()
    expect(phone.locator("#review-result .pair").first).to_be_visible()
    screenshot(phone, "review-duplicate-phone")
    assert fits_the_width(phone)
    # And a refusal shows the API's code
    phone.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files(
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}
    )
    phone.get_by_role("button", name="Check the photo").click()
    expect(phone.get_by_role("alert")).to_have_text("not_an_image: The file is not an image we can read.")


# Holds the page's first PUT back until window.release(); counts the PUTs sent and answered
HOLD_FIRST_PUT = """() => {
  const fetched = window.fetch;
  let release;
  const released = new Promise((resolve) => (release = resolve));
  Object.assign(window, { release, sent: 0, answered: 0 });
  window.fetch = async (url, init) => {
    if (!init || init.method !== "PUT") return fetched(url, init);
    window.sent += 1;
    if (window.sent === 1) await released;
    const answer = await fetched(url, init);
    window.answered += 1;
    return answer;
  };
}"""


def reencoded(data: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def our_card(page: Page, cards: Any, ours: set[str]) -> tuple[Any, re.Match[str]]:
    """The first card showing one of `ours`, paging forward from the current page until one does."""
    for number in range(1, 50):
        for card in cards.all():
            found = re.search(r"/([0-9a-f]{64})\.", card.locator("img").get_attribute("src") or "")
            if found and found[1] in ours:
                return card, found
        page.get_by_role("button", name="Next page").click()
        expect(page.locator("#catalogue-page")).to_have_text(f"Page {number + 1}")
    raise AssertionError("none of the stored photos is listed")


def test_browse_the_catalogue_by_page_and_delete_after_confirming(
    console: Callable[..., Page], local_stack: LocalStack, axe: str
) -> None:
    # Given more than a page (6) of photos in blysk
    mine = [earring_photo(500 + seed) for seed in range(7)]
    for data in mine:
        store(local_stack, data, "blysk")
    page = console()
    # When the catalogue tab is chosen with the keyboard and the storefront set to blysk
    page.get_by_label("Storefront", exact=True).select_option("blysk")
    page.get_by_role("tab", name="Upload and review").focus()
    page.keyboard.press("ArrowRight")
    # Then the first page shows six photos, and the next page more
    expect(page.get_by_role("tab", name="Catalogue")).to_have_attribute("aria-selected", "true")
    cards = page.locator("#catalogue-grid > li")
    expect(cards).to_have_count(6)
    screenshot(page, "catalogue")
    accessible(page, axe)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#catalogue-page")).to_have_text("Page 2")
    expect(cards.first).to_be_visible()
    page.get_by_role("button", name="Previous page").click()
    expect(page.locator("#catalogue-page")).to_have_text("Page 1")
    expect(cards).to_have_count(6)
    # When one of our photos' Delete is pressed (the listing is newest first, so ours lead it unless a photo
    # was stored since: page on until one of ours shows) and the dialog dismissed with Escape
    first, image_id = our_card(page, cards, {hashlib.sha256(data).hexdigest() for data in mine})
    name = first.locator("figcaption strong").inner_text()  # its file name and the start of its id
    assert re.fullmatch(r"piece\.jpg \([0-9a-f]{8}\)", name)
    first.get_by_role("button", name=f"Delete {name}").click()
    dialog = page.get_by_role("dialog", name="Delete this photo?")
    expect(dialog).to_be_visible()
    screenshot(page, "catalogue-confirm-delete")
    page.keyboard.press("Escape")
    # Then nothing is deleted
    expect(page.locator("#catalogue-status")).to_have_text(f"Kept {name}.")
    listed = requests.get(f"{local_stack.url}/images", params={"website": "blysk", "limit": 100}, timeout=10).json()
    assert image_id[1] in {image["image_id"] for image in listed["images"]}
    # When it is deleted, confirmed from the keyboard
    first.get_by_role("button", name=f"Delete {name}").click()
    dialog.get_by_role("button", name="Delete").focus()
    page.keyboard.press("Enter")
    # Then it is gone from the API as from the page
    expect(page.locator("#catalogue-status")).to_have_text(f"Deleted {name}.")
    again = requests.delete(f"{local_stack.url}/images/{image_id[1]}", params={"website": "blysk"}, timeout=10)
    assert again.status_code == 404


def test_generate_watch_the_gallery_regenerate_and_download(
    console: Callable[..., Page], local_stack: LocalStack, axe: str
) -> None:
    # Given a catalogue photo in alya, and no image-edit provider (types 2, 4 and 5 fail with a reason)
    stored = store(local_stack, earring_photo(77), "alya")
    page = console()
    page.get_by_role("tab", name="Generation").click()
    # When a job is started for types 1 (white background), 2 (hand) and 3 (dimension image, 22 × 25 mm)
    page.get_by_label("Catalogue photo").fill(stored["s3_url"])
    page.get_by_label("Product type").select_option("earring")
    for type_name, wanted in (("1. White background", True), ("2. Hand holding", True), ("3. Dimension image", True)):
        page.get_by_label(type_name).set_checked(wanted)
    page.get_by_label("4. Lifestyle (nature)").set_checked(False)
    page.get_by_label("5. Model wearing").set_checked(False)
    page.get_by_label("Width").fill("22")
    page.get_by_label("Height").fill("25")
    page.get_by_role("button", name="Start the job").click()
    # Then the gallery fills in: the white background and the dimension image made, the hand failed with its reason
    gallery = page.locator("#generate-gallery")
    expect(page.locator("#generate-status")).to_have_text(re.compile(r"Job [0-9a-f]{32}: partial"))
    expect(gallery.locator('[data-type="1"] img')).to_be_visible()
    expect(gallery.locator('[data-type="2"]')).to_contain_text("Failed: provider_unavailable")
    expect(gallery.locator('[data-type="3"] img')).to_be_visible()
    # And the ZIP link downloads the images
    zip_url = page.get_by_role("link", name="Download the ZIP of the images").get_attribute("href")
    assert zip_url
    archive = zipfile.ZipFile(io.BytesIO(requests.get(zip_url, timeout=10).content))
    assert any(name.startswith("1-") for name in archive.namelist())
    screenshot(page, "generation")
    accessible(page, axe)
    first_run = gallery.locator('[data-type="1"]').get_attribute("data-run")
    assert first_run
    # When the white background is regenerated
    page.get_by_role("button", name="Regenerate White background").click()
    # Then the job runs again (a new run) and shows the image that run made, and ends (an image is shown
    # once its run has ended: waiting for the new run's, not for a link that differs from the last one's,
    # which a presigned link does every second whatever the run)
    expect(gallery.locator(f'[data-type="1"]:not([data-run="{first_run}"]) img')).to_be_visible()
    expect(page.locator("#generate-status")).to_have_text(re.compile(r": (partial|done)$"))
    screenshot(page, "generation-regenerated")


def test_the_listings_tab_shows_the_migrations_progress(
    console: Callable[..., Page],
    local_stack: LocalStack,
    running_execution: str,
    axe: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a finished run of the migration's state machine over two demo listings
    zpid, run = migrated_demo_listing(capsys)
    # And a run going: planned (one batch), none of its batches run yet
    plan = plan_by_hand(local_stack, {"operation": "execute", "zpids": [zpid]}, running_execution)
    # And three more listings in the index: two migrated (all three split fields), one not yet
    index = ListingsIndex.from_settings()
    index.ensure_split_mapping()
    settle(local_stack)  # no earlier module's asynchronous work adds listings between the two counts
    before = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()
    migrated = {name: "brick exterior" for name in SPLIT_FIELDS}
    docs = {
        f"9{uuid.uuid4().int % 10**9:09d}": source for source in (migrated, migrated, {"visual_features_text": "x"})
    }
    helpers.bulk(index.client, ({"_index": index.name, "_id": z, "_source": {"zpid": z, **d}} for z, d in docs.items()))
    index.refresh()
    try:
        # When the read-only progress API is asked, and the listings tab is opened
        after = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()
        page = console()
        page.get_by_role("tab", name="Listings").click()
        # Then both count the new listings, and the tab shows the API's figures
        assert after["total"] == before["total"] + 3
        assert after["all_fields"]["listings"] == before["all_fields"]["listings"] + 2
        assert after["target_pct"] == 90.0
        status = page.locator("#listings-status")
        expect(status).to_contain_text(f"{after['total']:,} listings; {after['all_fields']['listings']:,} (")
        rows = page.get_by_role("table", name="Listings holding each split field").locator("tbody tr")
        expect(rows).to_have_count(4)
        expect(rows.last).to_contain_text(f"All three{after['all_fields']['listings']:,}")
        # And the run going above the last run: its batches recorded so far
        expect(page.locator("#listings-current-run")).to_contain_text(
            f"Run {plan['run_id']} (execute): 0 of 1 batches recorded, running since "
        )
        # And the last run: its batches done and failed, and verify's result
        last_run = page.get_by_role("definition")
        expect(page.locator("#listings-run")).to_contain_text(f"Run{run['run_id']} (execute)")
        expect(page.locator("#listings-run")).to_contain_text(f"Batches done{run['batches']}Batches failed0")
        expect(last_run.filter(has_text="% of 2 with all three")).to_have_text("passed: 100.0 % of 2 with all three")
        # When one of the run's listings is asked for, from the keyboard
        page.get_by_label("Listing (zpid)").fill(zpid)
        page.get_by_label("Listing (zpid)").press("Enter")
        # Then its photos and its text before and after the split show side by side
        shown = page.locator("#listing-result")
        expect(shown.get_by_role("heading", level=3)).to_have_text(f"Listing {zpid}: split")
        expect(shown.get_by_role("region", name="Before the split").locator("p")).not_to_be_empty()
        expect(shown.get_by_role("region", name="After the split").locator("dd")).to_have_count(3)
        expect(shown.get_by_role("region", name="After the split")).not_to_contain_text("(not split)")
        expect(shown.get_by_role("list", name="Listing photos").locator("li").first).to_be_visible()
        screenshot(page, "listings")
        accessible(page, axe)
    finally:
        helpers.bulk(index.client, ({"_op_type": "delete", "_index": index.name, "_id": z} for z in docs))
        index.refresh()
    # And a parameter the API does not take is refused
    refused = requests.get(f"{local_stack.url}/listings/migration", params={"run_id": "x"}, timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "unknown_parameter")


def test_under_keys_the_console_sends_the_typed_key_and_shows_the_storefronts_it_may_not_read(
    console: Callable[..., Page], local_stack: LocalStack, keyed: tuple[str, str]
) -> None:
    url, key = keyed
    store(local_stack, earring_photo(901), "blysk", url, key)
    # Given the console served by the keyed gateway (its files need no key), when the catalogue is opened without one
    page = console(url=url)
    page.get_by_label("Storefront", exact=True).select_option("blysk")
    page.get_by_role("tab", name="Catalogue").click()
    # Then the API's refusal shows
    expect(page.get_by_role("alert")).to_contain_text("unauthorized")
    # When the blysk client's key is typed in, the catalogue shows blysk's photos
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Tab")
    page.get_by_role("button", name="Load the first page").click()
    expect(page.locator("#catalogue-grid > li").first).to_be_visible()
    # And alya, which the key does not hold, is refused as the API refuses it
    page.get_by_label("Storefront", exact=True).select_option("alya")
    expect(page.get_by_role("alert")).to_contain_text("storefront_forbidden")
    screenshot(page, "keyed-forbidden")
    # And the key stays in the tab's session storage, never in the page
    assert page.evaluate("sessionStorage.getItem('apiKey')") == key
    assert key not in page.content()
