// Sign-in: a pasted token is checked against the node (/portal/access) before it is kept;
// OIDC sign-in (authorization code with PKCE, RFC 7636) when the node configures an issuer.
// Tokens live in this tab's sessionStorage only; the authorization code is removed from
// the address bar as soon as the page reads it.
import { clearToken, el, explain, getJSON, seesWords, setToken, show, token } from "./common.js";

const error = document.getElementById("s-error");
const status = document.getElementById("s-status");
const PKCE_KEY = "fednode.pkce";

function drawLevels(access) {
  document.querySelector("#levels tbody").replaceChildren(...access.datasets.map((d) =>
    el("tr", { "data-dataset": d.id },
      el("th", { scope: "row", text: d.name }), el("td", { text: d.securityLevel }),
      el("td", { class: "level", text: d.visitorLevel }),
      el("td", { class: "granularity", "data-granularity": d.granularity ?? "none" },
        el("strong", { text: d.granularity ?? "none" }), `: ${seesWords(d.granularity)}`))));
}

async function refresh() {
  const current = token();
  const { status: code, body } = await getJSON("/portal/access", { bearer: current });
  document.getElementById("s-signout").hidden = !current;
  const line = document.getElementById("visitor");
  if (code === 200) {
    drawLevels(body);
    status.textContent = body.authenticated ? "Signed in: your token is held by this tab only."
      : "Not signed in: you see what anonymous visitors see.";
    line.textContent = body.authenticated ? "Signed in with a token (held by this tab only)."
      : "Anonymous visitor.";
  } else {
    show(error, explain(code, body));
  }
  return code;
}

async function signIn(candidate) {
  const { status: code, body } = await getJSON("/portal/access", { bearer: candidate });
  if (code !== 200) {
    show(error, `Sign-in failed. ${explain(code, body)}`);
    return false;
  }
  setToken(candidate);
  show(error, "");
  await refresh();
  return true;
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function random(n) { return b64url(crypto.getRandomValues(new Uint8Array(n))); }

async function startOidc(oidc) {
  if (!crypto.subtle) {
    show(error, "Sign-in with your institution needs a secure page (https, or localhost).");
    return;
  }
  const verifier = random(48), state = random(24);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(oidc.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(),
    scope: oidc.scope, state, code_challenge: challenge, code_challenge_method: "S256",
  }).toString();
  location.assign(url.href);
}

function redirectUri() { return new URL("/signin", location.origin).href; }

async function finishOidc(oidc, params) {
  history.replaceState(null, "", "/signin"); // the code leaves the address bar at once
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (params.get("error")) {
    show(error, `The issuer refused the sign-in: ${params.get("error")}.`);
    return;
  }
  if (!saved || saved.state !== params.get("state")) {
    show(error, "Sign-in failed: the answer does not belong to a sign-in this tab started.");
    return;
  }
  let resp;
  try {
    resp = await fetch(oidc.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", code: params.get("code"),
        redirect_uri: redirectUri(), client_id: oidc.client_id, code_verifier: saved.verifier,
      }),
    });
  } catch {
    show(error, "Sign-in failed: the issuer's token endpoint could not be reached.");
    return;
  }
  const body = await resp.json().catch(() => ({}));
  const candidate = body[oidc.token_field];
  if (!resp.ok || !candidate) {
    show(error, `Sign-in failed: the issuer returned no ${oidc.token_field}` +
      (body.error ? ` (${body.error})` : "") + ".");
    return;
  }
  await signIn(candidate);
}

async function init() {
  document.getElementById("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("s-token");
    const candidate = field.value.trim();
    if (!candidate) { show(error, "Paste a token first."); return; }
    if (await signIn(candidate)) field.value = "";
  });
  document.getElementById("s-signout").addEventListener("click", async () => {
    clearToken();
    show(error, "");
    await refresh();
  });
  const section = document.getElementById("oidc");
  const oidc = section.dataset.oidc ? JSON.parse(section.dataset.oidc) : null;
  if (oidc) {
    section.hidden = false;
    document.getElementById("oidc-issuer").textContent = oidc.issuer;
    document.getElementById("oidc-start").addEventListener("click", () => startOidc(oidc));
    const params = new URLSearchParams(location.search);
    if (params.has("code") || params.has("error")) await finishOidc(oidc, params);
  }
  await refresh();
  document.body.dataset.ready = "true";
}

init();
