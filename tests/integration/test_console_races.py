"""The console against answers that come back out of order: each test holds one request back in the
page's own fetch (no timing), lets a later request be answered, then releases the first; the page must
keep showing what the later request gave."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import Page, expect

from local.stack import LocalStack
from tests.integration.test_console import browser, console, store  # noqa: F401 - fixtures
from tests.integration.test_generation import earring_photo


def holding(url_part: str) -> str:
    """A script for page.evaluate: the page's requests whose URL contains `url_part` wait until
    window.release(), then each is handed back read in full (window.held and window.answered count them)."""
    return """() => {
  const fetched = window.fetch;
  let release;
  const released = new Promise((resolve) => (release = resolve));
  Object.assign(window, { release, held: 0, answered: 0 });
  window.fetch = async (url, init) => {
    if (!String(url).includes(URL_PART)) return fetched(url, init);
    window.held += 1;
    await released;
    const answer = await fetched(url, init);
    const body = await answer.text();
    window.answered += 1;
    return new Response(body, { status: answer.status, headers: answer.headers });
  };
}""".replace("URL_PART", json.dumps(url_part))


# The page's requests for blysk's photos
HOLD_BLYSK = holding("website=blysk")


def held_answers(page: Page) -> int:
    return int(page.evaluate("() => window.answered"))


def test_an_answer_that_comes_back_late_does_not_overwrite_the_storefront_chosen_since(
    console: Callable[..., Page],  # noqa: F811 - the fixture
    local_stack: LocalStack,
) -> None:
    store(local_stack, earring_photo(521), "blysk")
    page = console()
    status, grid = page.locator("#catalogue-status"), page.locator("#catalogue-grid")
    # Given blysk's catalogue asked for, and its answer held back (the page's fetch waits on a promise)
    page.evaluate(HOLD_BLYSK)
    page.get_by_label("Storefront", exact=True).select_option("blysk")
    page.get_by_role("tab", name="Catalogue").click()
    page.wait_for_function("() => window.held > 0")
    # When alya is chosen and its page answered first
    page.get_by_label("Storefront", exact=True).select_option("alya")
    expect(status).not_to_have_text("Loading…")
    shown = (status.inner_text(), grid.inner_text())
    # And blysk's answers arrive afterwards (read in full), and the page has had a turn of its event loop
    page.evaluate("window.release()")
    page.wait_for_function("() => window.answered === window.held")
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")
    # Then the page still shows alya's catalogue, not the stale answer for blysk
    assert held_answers(page) > 0
    assert (status.inner_text(), grid.inner_text()) == shown


# The page's photo checks (POST /image_similarity_search)
HOLD_CHECKS = holding("/image_similarity_search")


def test_a_check_answered_late_does_not_replace_the_one_made_since(
    console: Callable[..., Page],  # noqa: F811 - the fixture
) -> None:
    page = console()
    result = page.locator("#review-result")
    # Given a check of a file that is no photo, its answer (a refusal) held back
    page.evaluate(HOLD_CHECKS)
    page.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files(
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}
    )
    page.get_by_role("button", name="Check the photo").click()
    page.wait_for_function("() => window.held > 0")
    # When the file is taken away and the form checked again (answered at once: choose a photo first)
    page.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files([])
    page.get_by_role("button", name="Check the photo").click()
    expect(result.get_by_role("alert")).to_have_text("Choose a photo first.")
    # And the first check's answer arrives afterwards, and the page has had a turn of its event loop
    page.evaluate("window.release()")
    page.wait_for_function("() => window.answered === window.held")
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")
    # Then the page still shows the later check's outcome, not the stale refusal
    assert result.inner_text() == "Choose a photo first."
