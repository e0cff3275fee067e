// Listings: one listing by zpid (GET /listings/{zpid}, read-only): its photos as links, and its text
// before the visual-features split (the aggregated `visual_features_text`) beside the three split fields.
import { call } from "./api.js";
import { el, errorMessage, latestOnly, replace } from "./ui.js";

const AFTER = {
  exterior_visual_features: "Exterior",
  interior_visual_features: "Interior",
  amenities_visual_features: "Amenities",
};

function shown(body) {
  const photos = body.photos.map((photo, index) =>
    el("li", {}, photo.link ? el("a", { href: photo.link, rel: "noopener noreferrer" }, `Photo ${index + 1}`) : `Photo ${index + 1}: ${photo.url}`),
  );
  const before = body.before.visual_features_text;
  return [
    el("h3", {}, `Listing ${body.zpid}: ${body.split ? "split" : "not split yet"}${body.images_pending ? " (images pending)" : ""}`),
    el("h4", {}, `Photos (${body.photos.length})`),
    el("ul", { class: "photo-links", "aria-label": "Listing photos" }, photos),
    el(
      "div",
      { class: "before-after" },
      el("section", { "aria-label": "Before the split" }, el("h4", {}, "Before the split"), el("p", { class: "text" }, before || "(no text)")),
      el(
        "section",
        { "aria-label": "After the split" },
        el("h4", {}, "After the split"),
        el(
          "dl",
          { class: "caption" },
          Object.entries(AFTER).map(([field, label]) => [el("dt", {}, label), el("dd", {}, body.after[field] ?? "(not split)")]),
        ),
      ),
    ),
  ];
}

export function initListing() {
  const form = document.getElementById("listing-form");
  const result = document.getElementById("listing-result");
  const begin = latestOnly();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const latest = begin();
    const zpid = form.elements.zpid.value.trim();
    if (!zpid) {
      replace(result, errorMessage({ message: "Type a listing's zpid first." }));
      return;
    }
    try {
      const { body } = await call("GET", `/listings/${encodeURIComponent(zpid)}`);
      if (latest()) replace(result, shown(body));
    } catch (error) {
      if (latest()) replace(result, errorMessage(error));
    }
  });
}
