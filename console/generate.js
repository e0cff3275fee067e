// Generation: POST /generate-images with `Prefer: respond-async`, then GET /jobs/{job_id} until the job
// ends; each type's image shows as it is made, a failed type shows its reason, any type can be made
// again (POST /regenerate-image), and the ZIP is a link.
import { call } from "./api.js";
import { el, errorMessage, latestOnly, replace, say } from "./ui.js";

const TYPES = { 1: "White background", 2: "Hand holding", 3: "Dimension image", 4: "Lifestyle (nature)", 5: "Model wearing" };
const DEFAULT_TYPES = [1, 2, 4, 5]; // the API's default
const ENDED = new Set(["done", "partial", "failed", "cancelled"]);
const POLL_MS = 400;

export function useSource(url) {
  document.getElementById("generate-source").value = url;
}

function tile(view, type, ended, regenerate) {
  const made = (view.gen_images || []).find((image) => image.image_type === type);
  const failed = (view.failed || []).find((failure) => failure.image_type === type);
  const name = TYPES[type] || `Type ${type}`;
  let body;
  if (made) body = el("img", { src: made.image_url, alt: `${name}, generated` });
  else if (failed) body = el("p", { class: "error" }, `Failed: ${failed.reason}`, el("br"), failed.message || "");
  else body = el("p", { class: "status" }, ended ? "Not made." : "Working…");
  return el(
    "li",
    {
      class: "card",
      "data-type": String(type),
      "data-state": made ? "made" : failed ? "failed" : "pending",
      "data-run": view.run ? view.run.run_id : undefined, // the run this tile shows (a regeneration is a new run)
    },
    el("figure", {}, body, el("figcaption", {}, el("strong", {}, `${type}. ${name}`))),
    el(
      "button",
      { type: "button", disabled: !ended, "aria-label": `Regenerate ${name}`, onclick: () => regenerate(type) },
      "Regenerate",
    ),
  );
}

export function initGenerate() {
  const form = document.getElementById("generate-form");
  const status = document.getElementById("generate-status");
  const gallery = document.getElementById("generate-gallery");
  const zip = document.getElementById("generate-zip");
  const types = document.getElementById("generate-types");
  for (const [value, name] of Object.entries(TYPES)) {
    const checked = DEFAULT_TYPES.includes(Number(value));
    types.append(el("label", {}, el("input", { type: "checkbox", name: "types", value, checked }), ` ${value}. ${name}`));
  }
  // The job shown is the one of the latest start or regeneration: an older one's answers (a slow POST,
  // a poll in flight) are dropped, and its poll loop stops.
  const begin = latestOnly();

  function render(view) {
    const ended = ENDED.has(view.status);
    say(status, `Job ${view.job_id}: ${view.status}`, view.status === "failed" ? "error" : "info");
    const requested = [...new Set([...(view.image_types || []), ...(view.gen_images || []).map((i) => i.image_type)])];
    const again = (type) => regenerate(view.job_id, type);
    replace(gallery, requested.sort((a, b) => a - b).map((type) => tile(view, type, ended, again)));
    replace(zip, view.zip_url ? el("a", { href: view.zip_url, download: "" }, "Download the ZIP of the images") : null);
  }

  async function follow(id, latest) {
    while (latest()) {
      try {
        const { body } = await call("GET", `/jobs/${encodeURIComponent(id)}`);
        if (!latest()) return;
        render(body);
        if (ENDED.has(body.status)) return;
      } catch (error) {
        if (latest()) replace(status, errorMessage(error));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async function regenerate(jobId, type) {
    const latest = begin();
    say(status, `Regenerating ${TYPES[type] || type}…`);
    try {
      await call("POST", "/regenerate-image", { json: { job_id: jobId, image_type: type } });
      await follow(jobId, latest);
    } catch (error) {
      if (latest()) replace(status, errorMessage(error));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = [...form.querySelectorAll('input[name="types"]:checked')].map((box) => Number(box.value));
    const width = form.elements.width.value;
    const height = form.elements.height.value;
    const request = { s3_urls: form.elements.source.value.trim(), product_type: form.elements.product.value, image_types: chosen };
    if (width && height) request.dimensions_mm = { width: Number(width), height: Number(height) };
    const latest = begin();
    replace(gallery);
    replace(zip);
    say(status, "Starting…");
    try {
      const { body } = await call("POST", "/generate-images", { json: request, headers: { Prefer: "respond-async" } });
      await follow(body.job_id, latest);
    } catch (error) {
      if (latest()) replace(status, errorMessage(error));
    }
  });
}
