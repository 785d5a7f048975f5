// Shared by the portal's pages: the visitor's token (this tab's sessionStorage only, sent
// in the Authorization header, never in a URL), API calls, safe DOM building, and the
// words that explain the node's refusals.
const TOKEN_KEY = "fednode.token";

export const token = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (value) => sessionStorage.setItem(TOKEN_KEY, value);
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

export function authHeaders(bearer = token()) {
  return bearer ? { Authorization: `Bearer ${bearer}` } : {};
}

// GET `path` from this node as JSON: {status, body} (body null when it is not JSON).
export async function getJSON(path, { bearer = token(), headers = {} } = {}) {
  const resp = await fetch(path, {
    headers: { Accept: "application/json", ...authHeaders(bearer), ...headers },
    cache: "no-store",
  });
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  return { status: resp.status, body };
}

// An element with attributes and children (strings become text: never parsed as HTML).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

export function show(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

// The message of any of the node's error formats (Beacon envelope, htsget, portal).
export function errorMessage(body) {
  if (!body) return "";
  if (body.error && typeof body.error === "object") return body.error.errorMessage || "";
  if (typeof body.error === "string") return body.error;
  if (body.htsget) return body.htsget.message || "";
  return "";
}

// A refusal in words: what happened, and what the visitor can do.
export function explain(status, body) {
  const message = errorMessage(body);
  const said = message ? ` The node said: “${message}”.` : "";
  if (status === 401) {
    return "Your token was not accepted (expired, not from a broker this node trusts, or " +
      "malformed). Sign in again, or sign out to continue anonymously." + said;
  }
  if (status === 403 && /budget/i.test(message)) {
    return "Privacy budget spent: the node limits how much any requester can learn about " +
      "the people in a dataset, and answering this would go past that limit. Answers to " +
      "requesters entitled to records are not charged; otherwise the budget refills " +
      "over its window." + said;
  }
  if (status === 403) {
    return "Access needed: your level does not allow this answer. Sign in with a Passport " +
      "holding the access this dataset requires." + said;
  }
  if (status === 400) return "The node could not use this query." + said;
  if (status === 404) return "Not found on this node." + said;
  if (status === 413) return "The request is larger than this node accepts." + said;
  if (status === 503) return "The node cannot answer right now; try again later." + said;
  if (status === 504) return "The query ran past the node's time limit; narrow it." + said;
  return `The node answered with HTTP status ${status}.` + said;
}

export const SEES = {
  boolean: "whether variants exist",
  count: "how many variants match",
  record: "the records, and streams them through htsget",
};

export function seesWords(granularity) {
  return granularity ? SEES[granularity] || granularity : "nothing (no access)";
}

// The visitor's access per dataset (/portal/access), and the line in the page header
// saying who the visitor is. A refused token is said, never silently dropped.
export async function visitor() {
  const line = document.getElementById("visitor");
  const { status, body } = await getJSON("/portal/access");
  if (status === 200) {
    line.textContent = body.authenticated
      ? "Signed in with a token (held by this tab only)." : "Anonymous visitor.";
    return body;
  }
  line.textContent = status === 401
    ? "Your token was refused: sign in again or sign out." : explain(status, body);
  line.classList.add("error");
  return null;
}
