import { el, explain, getJSON, seesWords, show, visitor } from "./common.js";

function fact(list, term, value) {
  list.append(el("dt", { text: term }), el("dd", { text: value ?? "—" }));
}

async function nodeInfo() {
  const list = document.getElementById("node-info");
  const [info, htsget] = await Promise.all([
    getJSON("/api/info", { bearer: null }),
    getJSON("/htsget/variants/service-info", { bearer: null }),
  ]);
  list.replaceChildren();
  const r = info.body && info.body.response;
  if (!r) { fact(list, "Status", explain(info.status, info.body)); return; }
  fact(list, "Name", r.name);
  fact(list, "Identifier", r.id);
  fact(list, "Organization", r.organization && r.organization.name);
  fact(list, "Beacon API version", r.apiVersion);
  fact(list, "htsget version", htsget.body && htsget.body.type && htsget.body.type.version);
  fact(list, "Software version", r.version);
}

async function datasets() {
  const access = await visitor();
  const tbody = document.querySelector("#datasets tbody");
  if (access === null) {
    show(document.getElementById("home-error"),
      "Your token was refused, so your access cannot be shown: sign in again or sign out.");
    return;
  }
  tbody.replaceChildren(...access.datasets.map((d) => el("tr", { "data-dataset": d.id },
    el("th", { scope: "row" }, d.name, d.name !== d.id ? el("small", {}, ` (${d.id})`) : null),
    el("td", { text: d.assembly }),
    el("td", { text: d.samples ?? "shown with record access" }),
    el("td", { text: d.variants ?? "shown with record access" }),
    el("td", { text: d.securityLevel }),
    el("td", { text: d.visitorLevel }),
    el("td", { class: "granularity", "data-granularity": d.granularity ?? "none" },
      el("strong", { text: d.granularity ?? "none" }), `: ${seesWords(d.granularity)}`),
  )));
}

nodeInfo();
datasets();
