// Listings: the visual-features migration's progress, from GET /listings/migration (read-only):
// how many listings hold each split field and all three, against the share `verify` requires.
import { call } from "./api.js";
import { el, errorMessage, replace, say } from "./ui.js";

const FIELDS = {
  exterior_visual_features: "Exterior",
  interior_visual_features: "Interior",
  amenities_visual_features: "Amenities",
};

function row(name, share) {
  return el(
    "tr",
    {},
    el("th", { scope: "row" }, name),
    el("td", {}, share.listings.toLocaleString()),
    el("td", {}, `${share.pct.toFixed(1)} %`),
    el("td", {}, el("progress", { max: "100", value: String(share.pct), "aria-label": `${name}: ${share.pct} %` })),
  );
}

export function initListings() {
  const status = document.getElementById("listings-status");
  const table = document.getElementById("listings-progress");

  async function show() {
    say(status, "Loading…");
    try {
      const { body } = await call("GET", "/listings/migration");
      const all = body.all_fields;
      const verdict = body.meets_target ? "reaching" : "short of";
      say(
        status,
        `${body.total.toLocaleString()} listings; ${all.listings.toLocaleString()} (${all.pct.toFixed(1)} %) hold all three ` +
          `split fields, ${verdict} the ${body.target_pct} % that verify requires.`,
        body.meets_target ? "ok" : "info",
      );
      replace(
        table.tBodies[0],
        Object.entries(FIELDS).map(([field, name]) => row(name, body.fields[field])),
        row("All three", all),
      );
      table.hidden = false;
    } catch (error) {
      table.hidden = true;
      replace(status, errorMessage(error));
    }
  }

  document.getElementById("listings-refresh").addEventListener("click", show);
  document.getElementById("tab-listings").addEventListener("console:shown", show);
}
