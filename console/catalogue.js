// Catalogue: GET /images a page at a time (the cursors seen so far give "Previous"), and
// DELETE /images/{image_id} once the confirmation dialog says so.
import { call, storefront } from "./api.js";
import { el, errorMessage, latestOnly, replace, say } from "./ui.js";

const PAGE_SIZE = 6;
let cursors = [null]; // the cursor of each page seen; the last is the page shown

function card(image, onDelete) {
  // several photos may share a file name: the start of the id tells them apart (also to a screen reader)
  const name = `${image.image_name || "photo"} (${image.image_id.slice(0, 8)})`;
  const when = image.created_at ? new Date(image.created_at * 1000).toLocaleString() : "";
  return el(
    "li",
    { class: "card" },
    el(
      "figure",
      {},
      el("img", { src: image.s3_url, alt: name, loading: "lazy" }),
      el("figcaption", {}, el("strong", {}, name), el("br"), when),
    ),
    el(
      "div",
      { class: "toolbar" },
      el(
        "button",
        {
          type: "button",
          "aria-label": `Generate images from ${name}`,
          onclick: () =>
            document.dispatchEvent(new CustomEvent("console:generate", { detail: { url: image.s3_url } })),
        },
        "Generate images",
      ),
      el("button", { type: "button", class: "danger", "aria-label": `Delete ${name}`, onclick: () => onDelete(image, name) }, "Delete"),
    ),
  );
}

function confirmDelete(name) {
  const dialog = document.getElementById("confirm-delete");
  document.getElementById("confirm-text").textContent = `${name} will be removed from ${storefront()}: its photo, its vector and its record.`;
  return new Promise((resolve) => {
    const ok = document.getElementById("confirm-ok");
    const cancel = document.getElementById("confirm-cancel");
    const done = (answer) => {
      ok.onclick = cancel.onclick = dialog.oncancel = null;
      dialog.close();
      resolve(answer);
    };
    ok.onclick = () => done(true);
    cancel.onclick = () => done(false);
    dialog.oncancel = () => done(false); // Escape
    dialog.showModal();
    cancel.focus();
  });
}

export function initCatalogue() {
  const grid = document.getElementById("catalogue-grid");
  const status = document.getElementById("catalogue-status");
  const prev = document.getElementById("catalogue-prev");
  const next = document.getElementById("catalogue-next");
  let nextCursor = null;
  const begin = latestOnly();

  async function show() {
    const current = begin();
    say(status, "Loading…");
    prev.disabled = next.disabled = true; // until this page is shown: a cursor pushed now would be the last page's
    try {
      const { body } = await call("GET", "/images", {
        query: { website: storefront(), limit: PAGE_SIZE, cursor: cursors[cursors.length - 1] },
      });
      if (!current()) return;
      nextCursor = body.next_cursor;
      replace(grid, body.images.map((image) => card(image, remove)));
      document.getElementById("catalogue-page").textContent = `Page ${cursors.length}`;
      const count = body.images.length;
      say(status, count ? `${count} photo${count === 1 ? "" : "s"} on this page.` : "No photos on this page.");
    } catch (error) {
      if (!current()) return;
      replace(grid);
      replace(status, errorMessage(error));
    }
    prev.disabled = cursors.length < 2;
    next.disabled = !nextCursor;
  }

  async function remove(image, name) {
    if (!(await confirmDelete(name))) {
      say(status, `Kept ${name}.`);
      return;
    }
    try {
      await call("DELETE", `/images/${encodeURIComponent(image.image_id)}`, { query: { website: storefront() } });
      say(status, `Deleted ${name}.`);
      await show();
      say(status, `Deleted ${name}.`);
    } catch (error) {
      replace(status, errorMessage(error));
    }
  }

  const first = () => {
    cursors = [null];
    return show();
  };
  document.getElementById("catalogue-refresh").addEventListener("click", first);
  next.addEventListener("click", () => {
    cursors.push(nextCursor);
    show();
  });
  prev.addEventListener("click", () => {
    cursors.pop();
    show();
  });
  document.getElementById("storefront").addEventListener("change", first);
  document.getElementById("tab-catalogue").addEventListener("console:shown", first);
}
