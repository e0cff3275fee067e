// Reviewers' verdicts on a duplicate pair (the upload and one match): "Same piece" or "Not a
// duplicate", recorded with PUT /verdicts in the chosen storefront and shown as recorded (GET
// /verdicts?image_id=…). Recording again replaces the pair's verdict. The upload's id is its bytes'
// SHA-256, as the API names every image.
import { call, storefront } from "./api.js";
import { el, errorMessage, replace } from "./ui.js";

const LABELS = { same_piece: "Same piece", not_duplicate: "Not a duplicate" };

export async function imageId(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function shown(status, buttons, verdict) {
  for (const [value, button] of Object.entries(buttons)) button.setAttribute("aria-pressed", String(value === verdict));
  replace(status, verdict ? `Recorded: ${LABELS[verdict]}` : "No verdict yet");
}

// The two buttons and the recorded verdict for the pair (uploadId, match); `recorded`: the verdict
// already stored on the pair, if any.
export function verdictControls(uploadId, match, number, recorded) {
  const group = { class: "verdicts", role: "group", "aria-label": `Your verdict on match ${number}` };
  if (match.image_id === uploadId) return el("div", group, el("p", { class: "hint" }, "The same photo: nothing to judge."));
  const status = el("p", { class: "status", "aria-live": "polite" });
  const buttons = {};
  const website = storefront();
  // One PUT at a time for the pair, in the order pressed: two sent at once could reach the API (and
  // answer) in either order, leaving the page showing one verdict and the API holding the other.
  let recording = Promise.resolve();
  const record = async (value) => {
    try {
      const { body } = await call("PUT", "/verdicts", {
        json: { website, image_id: uploadId, matched_image_id: match.image_id, verdict: value },
      });
      shown(status, buttons, body.verdict);
    } catch (error) {
      replace(status, errorMessage(error));
    }
  };
  for (const [value, label] of Object.entries(LABELS)) {
    buttons[value] = el(
      "button",
      {
        type: "button",
        "aria-pressed": "false",
        onclick: () => {
          recording = recording.then(() => record(value));
        },
      },
      label,
    );
  }
  shown(status, buttons, recorded);
  const disabled = !match.image_id; // a vector indexed before records kept ids: no pair to name
  if (disabled) for (const button of Object.values(buttons)) button.disabled = true;
  return el("div", group, Object.values(buttons), status);
}

// The verdicts already recorded on pairs holding the upload, by the matched image's id.
export async function recordedFor(uploadId) {
  const found = {};
  let cursor;
  do {
    const { body } = await call("GET", "/verdicts", { query: { website: storefront(), image_id: uploadId, cursor } });
    for (const v of body.verdicts) found[v.image_id === uploadId ? v.matched_image_id : v.image_id] = v.verdict;
    cursor = body.next_cursor;
  } while (cursor);
  return found;
}
