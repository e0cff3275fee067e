// The console's shell: tabs (the WAI-ARIA tabs pattern: arrow keys, Home and End), the storefront
// and the optional API key; each tab is its own module.
import { initAuth } from "./auth.js";
import { initCatalogue } from "./catalogue.js";
import { initGenerate, useSource } from "./generate.js";
import { initListings } from "./listings.js";
import { initReview } from "./review.js";

const tabs = () => [...document.querySelectorAll('[role="tab"]')];

export function selectTab(tab, focus = true) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  tab.dispatchEvent(new CustomEvent("console:shown", { bubbles: true }));
}

function initTabs() {
  const list = document.getElementById("tabs");
  list.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) selectTab(tab);
  });
  list.addEventListener("keydown", (event) => {
    const all = tabs();
    const at = all.indexOf(document.activeElement);
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 };
    if (at < 0 || !(event.key in moves)) return;
    event.preventDefault();
    selectTab(all[(moves[event.key] + all.length) % all.length]);
  });
}

function initKey() {
  const input = document.getElementById("api-key");
  input.value = sessionStorage.getItem("apiKey") || "";
  input.addEventListener("change", () => sessionStorage.setItem("apiKey", input.value.trim()));
  document.getElementById("settings").addEventListener("submit", (event) => event.preventDefault());
}

initTabs();
initKey();
const signedIn = initAuth(); // back from the hosted UI, the code's exchange: requests need its token
initReview();
initCatalogue();
initGenerate();
initListings();
document.addEventListener("console:generate", (event) => {
  useSource(event.detail.url);
  selectTab(document.getElementById("tab-generate"));
  document.getElementById("generate-source").focus();
});
// ready once every control is wired and a sign-in under way is finished (a request before would go without its token)
signedIn.finally(() => {
  document.body.dataset.ready = "true";
});
