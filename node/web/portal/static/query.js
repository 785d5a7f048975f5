// The query form: builds the Beacon request, sends it to /api/g_variants (with the
// visitor's token in the header) and shows the node's answer as it is, in words.
import { el, errorMessage, explain, getJSON, show, visitor } from "./common.js";

const form = document.getElementById("query-form");
const chosen = new Map(); // filter id -> label
let terms = [];

function mode() { return form.querySelector("input[name=mode]:checked").value; }

function showMode() {
  const m = mode();
  for (const node of form.querySelectorAll("[data-modes]")) {
    node.hidden = !node.dataset.modes.split(" ").includes(m);
  }
}

function value(id) { return document.getElementById(id).value.trim(); }

function positive(id, label) {
  const text = value(id);
  if (!/^[0-9]+$/.test(text) || Number(text) < 1) throw new Error(`${label}: a whole number from 1`);
  return Number(text);
}

// The Beacon GET parameters of the form (VCF positions are 1-based; Beacon's are 0-based).
export function params() {
  const p = new URLSearchParams();
  const m = mode();
  if (m === "gene") {
    if (!value("q-gene")) throw new Error("Gene: give a gene symbol");
    p.set("geneId", value("q-gene"));
  } else {
    if (!value("q-chrom")) throw new Error("Chromosome: give one");
    p.set("referenceName", value("q-chrom"));
    if (m === "allele") {
      p.set("start", String(positive("q-pos", "Position") - 1));
      for (const [id, key, label] of [["q-ref", "referenceBases", "Reference bases"],
        ["q-alt", "alternateBases", "Alternate bases"]]) {
        if (!/^[ACGTNacgtn]+$/.test(value(id))) throw new Error(`${label}: letters A, C, G, T or N`);
        p.set(key, value(id).toUpperCase());
      }
    } else {
      const start = positive("q-start", "From"), end = positive("q-end", "To");
      if (end < start) throw new Error("To must not be before From");
      p.set("start", String(start - 1));
      p.set("end", String(end));
    }
  }
  if (value("q-assembly")) p.set("assemblyId", value("q-assembly"));
  if (value("q-dataset")) p.set("datasetIds", value("q-dataset"));
  if (chosen.size) p.set("filters", [...chosen.keys()].join(","));
  p.set("requestedGranularity", value("q-granularity"));
  return p;
}

function curl(url) {
  return `curl -s '${url.replaceAll("'", "'\\''")}'`;
}

function addFilter() {
  const input = document.getElementById("q-filter");
  const text = input.value.trim();
  if (!text) return;
  // A term picked from the list, or typed as is (the node says when it does not know it).
  const term = terms.find((t) => t.id === text || t.label === text);
  const id = term ? term.id : text;
  chosen.set(id, term && term.label ? `${term.label} (${id})` : id);
  input.value = "";
  drawFilters();
}

function drawFilters() {
  const list = document.getElementById("q-filters");
  list.replaceChildren(...[...chosen].map(([id, label]) => {
    const remove = el("button", { type: "button", "aria-label": `Remove filter ${label}` }, "×");
    remove.addEventListener("click", () => { chosen.delete(id); drawFilters(); });
    return el("li", {}, label, " ", remove);
  }));
}

function notes(status, body, requested) {
  const out = [];
  if (status !== 200) { out.push(["refusal", explain(status, body)]); return out; }
  const info = body.info || {};
  const warnings = info.warnings || {};
  if (warnings.unknownFilters) {
    out.push(["warning", `Unknown filter: ${warnings.unknownFilters.join(", ")} is not a ` +
      "filtering term of this node, so it matches nothing (it is not ignored)."]);
  }
  for (const [key, text] of Object.entries(warnings)) {
    if (key !== "unknownFilters") out.push(["warning", `${key}: ${typeof text === "string" ? text : JSON.stringify(text)}`]);
  }
  if (info.omittedDatasets) {
    const ds = Object.entries(info.omittedDatasets.datasets || {})
      .map(([id, g]) => `${id} (you may see ${g})`).join(", ");
    out.push(["warning", `Access needed: these datasets are left out because your level ` +
      `gives them a lower granularity than the answer's: ${ds}.`]);
  }
  const returned = body.meta && body.meta.returnedGranularity;
  if (returned && returned !== requested) {
    out.push(["warning", `You asked for ${requested}; the node answered at ${returned}, the ` +
      "most your access allows. Sign in for more."]);
  }
  const summary = body.responseSummary || {};
  if (summary.countPrecision === "imprecise") {
    out.push(["warning", "Small counts imprecise: this count is not exact. Counts below " +
      `${summary.countAdjustedTo ?? "the node's threshold"} are reported as that threshold, ` +
      "or noise was added, so that no individual can be singled out."]);
  } else if (summary.countPrecision === "rounded") {
    out.push(["warning", `The count is rounded up to a multiple of ${summary.countAdjustedTo}.`]);
  }
  if (info.testMode) out.push(["warning", info.testMode]);
  return out;
}

function browseLink(dataset, record, chrom) {
  const loc = record.variation && record.variation.location;
  const hgvs = record.identifiers && record.identifiers.genomicHGVSId;
  const contig = chrom || (hgvs ? hgvs.split(":")[0] : null);
  if (!loc || !contig) return null;
  const start = loc.interval.start.value, end = loc.interval.end.value;
  const locus = `${contig}:${Math.max(1, start - 99)}-${end + 100}`;
  return el("a", { href: `/browse?${new URLSearchParams({ dataset, locus })}` },
    `Open ${locus} in the genome browser`);
}

function records(body, chrom) {
  const out = [];
  const sets = (body.response && body.response.resultSets) || [];
  for (const set of sets) {
    if (!set.results || !set.results.length) continue;
    const rows = set.results.map((r) => {
      const v = r.variation || {};
      const f = (((r.frequencyInPopulations || [])[0] || {}).frequencies || [])[0] || {};
      return el("tr", {},
        el("th", { scope: "row", text: r.variantInternalId }),
        el("td", { text: (r.identifiers && r.identifiers.genomicHGVSId) || "" }),
        el("td", { text: v.referenceBases }), el("td", { text: v.alternateBases }),
        el("td", { text: f.alleleCount ?? "" }), el("td", { text: f.alleleNumber ?? "" }),
        el("td", { text: f.alleleFrequency !== undefined ? f.alleleFrequency.toPrecision(3) : "" }),
        el("td", {}, browseLink(set.id, r, chrom)));
    });
    out.push(el("div", { class: "table-wrap" }, el("table", { class: "records" },
      el("caption", { text: `Records of ${set.id} (${set.results.length} shown of ${set.resultsCount})` }),
      el("thead", {}, el("tr", {}, ...["Variant", "HGVS", "Ref", "Alt", "Allele count",
        "Allele number", "Frequency", "Genome browser"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows))));
  }
  return out;
}

function resultSets(body) {
  const sets = (body.response && body.response.resultSets) || [];
  if (!sets.length) return [];
  return [el("div", { class: "table-wrap" }, el("table", { id: "q-sets-table" },
    el("caption", { text: "Per dataset" }),
    el("thead", {}, el("tr", {}, ...["Dataset", "Exists", "Count", "Precision"].map(
      (h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...sets.map((s) => el("tr", {},
      el("th", { scope: "row", text: s.id }), el("td", { text: s.exists ? "yes" : "no" }),
      el("td", { text: s.resultsCount ?? "" }),
      el("td", { text: s.countPrecision ? s.countPrecision + (s.countAdjustedTo ? ` (adjusted to ${s.countAdjustedTo})` : "") : "" }))))))];
}

async function ask(event) {
  event.preventDefault();
  const formError = document.getElementById("q-form-error");
  let p;
  try { p = params(); } catch (e) { show(formError, e.message); return; }
  show(formError, "");
  const path = `/api/g_variants?${p}`;
  const { status, body } = await getJSON(path);
  const summary = (status === 200 && body.responseSummary) || {};
  document.getElementById("q-status").textContent = String(status);
  document.getElementById("q-exists").textContent =
    status !== 200 ? "no answer (refused)" : summary.exists ? "yes" : "no";
  document.getElementById("q-count").textContent =
    summary.numTotalResults ?? (status === 200 ? "not given at boolean granularity" : "—");
  document.getElementById("q-precision").textContent = summary.countPrecision
    ? summary.countPrecision + (summary.countAdjustedTo ? ` (adjusted to ${summary.countAdjustedTo})` : "")
    : "—";
  document.getElementById("q-returned").textContent =
    (body && body.meta && body.meta.returnedGranularity) || "—";
  const requested = p.get("requestedGranularity");
  document.getElementById("q-notes").replaceChildren(...notes(status, body, requested).map(
    ([kind, text]) => el("p", { class: kind, "data-kind": kind, text })));
  document.getElementById("q-sets").replaceChildren(...(status === 200 ? resultSets(body) : []));
  document.getElementById("q-records").replaceChildren(
    ...(status === 200 ? records(body, p.get("referenceName")) : []));
  document.getElementById("q-curl").textContent = curl(new URL(path, location.origin).href);
  const section = document.getElementById("q-result");
  section.hidden = false;
  section.dataset.answered = String(Date.now());
  if (status !== 200 && !errorMessage(body)) console.warn("refusal without a message", status);
}

async function init() {
  showMode();
  for (const radio of form.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showMode);
  document.getElementById("q-add-filter").addEventListener("click", addFilter);
  document.getElementById("q-filter").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); addFilter(); }
  });
  form.addEventListener("submit", ask);
  const [access, found] = await Promise.all([visitor(), getJSON("/api/filtering_terms")]);
  const assemblies = new Set(), datasetSelect = document.getElementById("q-dataset");
  for (const d of (access && access.datasets) || []) {
    assemblies.add(d.assembly);
    datasetSelect.append(el("option", { value: d.id, text: d.name }));
  }
  document.getElementById("q-assembly").replaceChildren(
    ...[...assemblies].map((a) => el("option", { value: a, text: a })));
  terms = (found.body && found.body.response && found.body.response.filteringTerms) || [];
  document.getElementById("q-terms").replaceChildren(...terms.map(
    (t) => el("option", { value: t.id, label: t.label ? `${t.label} (${t.scopes || []})` : undefined })));
  form.dataset.ready = "true";
}

init();
