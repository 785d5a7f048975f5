// The genome browser: igv.js (served by this node) showing a dataset's variants from the
// store and its registered reads, both streamed through this node's htsget API with the
// visitor's token in the request header.
import { authHeaders, el, show, visitor } from "./common.js";

const IGV = "/portal/igv/igv.esm.min.js";
const form = document.getElementById("browse-form");
const message = document.getElementById("b-message");
const error = document.getElementById("b-error");
let access = null;
let browser = null;

function tracks(dataset) {
  const headers = authHeaders();
  const out = [];
  for (const s of dataset.htsget) {
    const url = new URL(`/htsget/${s.kind}/${encodeURIComponent(s.id)}`, location.origin).href;
    if (s.kind === "variants") {
      const name = s.source === "store" ? `${dataset.name}: variants` : `${s.id} (variants)`;
      out.push({ name, type: "variant", sourceType: "htsget", format: "vcf", url, headers });
    } else if (s.format === "BAM" || !dataset.htsget.some((o) => o.id === s.id && o.format === "BAM")) {
      out.push({ name: `${s.id} (reads)`, type: "alignment", sourceType: "htsget",
        format: s.format.toLowerCase(), url, headers });
    }
  }
  return out;
}

// The assembly's FASTA when the node has one (reads are drawn against its bases), else
// the dataset's contigs and lengths only.
function reference(dataset) {
  const name = `${dataset.assembly} (${dataset.name})`;
  if (dataset.fasta) {
    return { id: dataset.assembly, name, fastaURL: dataset.fasta, indexURL: `${dataset.fasta}.fai` };
  }
  return { id: `${dataset.id}-contigs`, name, format: "chromsizes",
    fastaURL: `/portal/reference/${encodeURIComponent(dataset.id)}` };
}

async function showRegion(event) {
  if (event) event.preventDefault();
  show(error, "");
  const id = document.getElementById("b-dataset").value;
  const locus = document.getElementById("b-locus").value.trim();
  const dataset = access && access.datasets.find((d) => d.id === id);
  if (!dataset) { show(error, "Choose a dataset."); return; }
  if (!/^[^:\s]+:[0-9,]+-[0-9,]+$/.test(locus)) {
    show(error, "Region: chromosome:start-end, for example 1:10000-12000.");
    return;
  }
  if (dataset.granularity !== "record") {
    show(error, `Access needed: streaming ${dataset.name} needs record access; your level ` +
      `gives ${dataset.granularity ?? "no access"}. Sign in with a Passport that grants it.`);
    return;
  }
  history.replaceState(null, "", `/browse?${new URLSearchParams({ dataset: id, locus })}`);
  let igv;
  try {
    igv = (await import(IGV)).default;
  } catch {
    show(error, "igv.js is not installed on this node (run `npm ci` in its checkout; `make demo` does).");
    return;
  }
  const container = document.getElementById("igv");
  if (browser) { igv.removeBrowser(browser); browser = null; }
  container.replaceChildren();
  message.textContent = `Loading ${locus} of ${dataset.name}…`;
  browser = await igv.createBrowser(container, {
    reference: reference(dataset),
    loadDefaultGenomes: false, // igv.js would fetch its genome list from igv.org
    locus,
    tracks: tracks(dataset),
    showCursorGuide: false,
  });
  window.portalBrowser = browser; // for tests: what igv.js itself loaded
  message.textContent = `Showing ${locus} of ${dataset.name}: ${dataset.htsget.length} stream(s).`;
  container.dataset.loaded = locus;
}

async function init() {
  form.addEventListener("submit", showRegion);
  access = await visitor();
  const select = document.getElementById("b-dataset");
  for (const d of (access && access.datasets) || []) {
    select.append(el("option", { value: d.id, text: `${d.name} (you may see ${d.granularity ?? "nothing"})` }));
  }
  const wanted = new URLSearchParams(location.search);
  if (wanted.get("dataset")) select.value = wanted.get("dataset");
  if (wanted.get("locus")) document.getElementById("b-locus").value = wanted.get("locus");
  form.dataset.ready = "true";
  if (wanted.get("dataset") && wanted.get("locus")) await showRegion(null);
}

init();
