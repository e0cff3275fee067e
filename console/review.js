// Upload and review: POST /image_similarity_search (or POST /generate_caption when a type is chosen),
// then the verdict: each duplicate side by side with the upload, with a reviewer's buttons to record
// whether the pair is the same piece (verdicts.js), or the new photo and its caption.
import { call, storefront } from "./api.js";
import { el, errorMessage, latestOnly, replace } from "./ui.js";
import { imageId, recordedFor, verdictControls } from "./verdicts.js";

const CAPTION_FIELDS = [
  ["generated_name", "Name"],
  ["quality", "Quality"],
  ["color", "Colour"],
  ["attributes", "Attributes"],
  ["description", "Description"],
  ["provider", "Captioned by"],
];

function figure(src, alt, ...caption) {
  return el("figure", {}, el("img", { src, alt, loading: "lazy" }), el("figcaption", {}, ...caption));
}

function duplicates(body, upload, name, uploadId, recorded) {
  const matches = body.results || [];
  return [
    el("h3", { class: "verdict duplicate" }, `Duplicate: ${matches.length} match${matches.length === 1 ? "" : "es"}`),
    el(
      "ul",
      { class: "pairs", "aria-label": "Matches" },
      matches.map((match, index) =>
        el(
          "li",
          { class: "pair" },
          figure(upload, `Your upload, ${name}`, "Your upload"),
          figure(
            match.path,
            `Match ${index + 1}`,
            el("strong", {}, `Match ${index + 1}: ${match.match}`),
            ` · distance ${Number(match.distance).toFixed(3)}`,
          ),
          verdictControls(uploadId, match, index + 1, recorded[match.image_id]),
        ),
      ),
    ),
  ];
}

function stored(body, upload, name) {
  const fields = CAPTION_FIELDS.filter(([key]) => body[key] !== undefined && body[key] !== null);
  return [
    el("h3", { class: "verdict new" }, "New photo: stored"),
    figure(body.s3_url || upload, `The stored photo, ${name}`, body.image_name || body.display_name || name),
    fields.length
      ? el(
          "dl",
          { class: "caption", "aria-label": "Caption" },
          fields.map(([key, label]) => [el("dt", {}, label), el("dd", {}, body[key])]),
        )
      : null,
  ];
}

export function initReview() {
  const form = document.getElementById("review-form");
  const input = form.elements.file;
  const drop = document.getElementById("drop");
  const result = document.getElementById("review-result");
  // Only the latest check is shown: an earlier upload answered late must not replace it.
  const begin = latestOnly();
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    input.files = event.dataTransfer.files;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const latest = begin();
    const file = input.files[0];
    if (!file) {
      replace(result, errorMessage({ message: "Choose a photo first." }));
      input.focus();
      return;
    }
    const type = form.elements.type.value;
    const data = new FormData();
    data.append("file", file);
    data.append("website", storefront());
    data.append("scope", form.elements.scope.value);
    if (type) data.append("type", type);
    replace(result, el("p", { class: "status" }, "Checking…"));
    try {
      const { body } = await call("POST", type ? "/generate_caption" : "/image_similarity_search", { form: data });
      if (!latest()) return;
      const upload = URL.createObjectURL(file);
      if (body.duplicate_found) {
        const uploadId = await imageId(file);
        const recorded = await recordedFor(uploadId).catch(() => ({})); // the buttons still work without them
        if (latest()) replace(result, duplicates(body, upload, file.name, uploadId, recorded));
      } else {
        replace(result, stored(body, upload, file.name));
      }
    } catch (error) {
      if (latest()) replace(result, errorMessage(error));
    }
  });
}
