// Listings: the visual-features migration's progress, from GET /listings/migration (read-only):
// how many listings hold each split field and all three, against the share `verify` requires, and the
// run going (its batches recorded so far) above the last finished run's batches done and failed and
// verify's results; and one listing (listing.js).
import { call } from "./api.js";
import { initListing } from "./listing.js";
import { el, errorMessage, latestOnly, replace, say } from "./ui.js";

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

function currentRun(run) {
  if (!run) return null;
  const when = run.started_at ? new Date(run.started_at * 1000).toISOString().replace(".000", "") : "";
  return [
    el("h3", {}, "Run going"),
    el(
      "p",
      { class: "status", id: "listings-current-run" },
      `Run ${run.run_id} (${run.operation}): ${run.batches_recorded.toLocaleString()}${run.recorded_complete ? "" : "+"} of ` +
        `${run.batches.toLocaleString()} batches recorded, running since ${when}. Failed batches show when it finishes.`,
    ),
  ];
}

function lastRun(run) {
  if (!run) return el("p", { class: "hint" }, "No run has finished yet.");
  const verify = run.verify;
  const outcome = run.passed === true ? "passed" : run.passed === false ? "failed" : "finished";
  const when = run.finished_at ? new Date(run.finished_at * 1000).toISOString().replace(".000", "") : "";
  const facts = [
    ["Run", `${run.run_id} (${run.operation})`],
    ["Finished", `${when}: ${outcome}`],
    ["Batches done", run.batches_done.toLocaleString()],
    ["Batches failed", run.batches_failed.toLocaleString()],
  ];
  if (verify) {
    facts.push(["Verify", `${verify.passed ? "passed" : "failed"}: ${Number(verify.has_all_three_pct).toFixed(1)} % of ${verify.total} with all three`]);
    if (verify.failures && verify.failures.length) facts.push(["Verify failures", verify.failures.join("; ")]);
  }
  for (const failed of run.failed_batches) facts.push([`Batch ${failed.batch}`, `${failed.zpids} listings: ${failed.error}`]);
  return el("dl", { class: "caption", "aria-label": "Last run" }, facts.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

export function initListings() {
  const status = document.getElementById("listings-status");
  const table = document.getElementById("listings-progress");
  const current = document.getElementById("listings-current");
  const run = document.getElementById("listings-run");
  initListing();

  const begin = latestOnly();

  async function show() {
    const latest = begin();
    say(status, "Loading…");
    try {
      const { body } = await call("GET", "/listings/migration");
      if (!latest()) return;
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
      replace(current, currentRun(body.current_run));
      replace(run, lastRun(body.last_run));
    } catch (error) {
      if (!latest()) return;
      table.hidden = true;
      replace(current);
      replace(run);
      replace(status, errorMessage(error));
    }
  }

  document.getElementById("listings-refresh").addEventListener("click", show);
  document.getElementById("tab-listings").addEventListener("console:shown", show);
}
