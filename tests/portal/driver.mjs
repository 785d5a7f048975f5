// Drives the portal in headless Chromium (playwright-core, Debian's /usr/bin/chromium):
// node driver.mjs NODE_URL STEPS_JSON_FILE [ALSO_ALLOWED_ORIGIN...]
// Runs the steps in one page, and prints as JSON the values the steps read, every console
// error (HTTP error statuses apart), uncaught page error and CSP violation, and every request for another origin
// (each aborted: nothing leaves the node, except to the origins a test also allows).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [nodeUrl, stepsFile, ...alsoAllowed] = process.argv.slice(2);
const steps = JSON.parse(readFileSync(stepsFile, "utf8"));
const origin = new URL(nodeUrl).origin;
const profile = mkdtempSync(join(tmpdir(), "fednode-portal-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1200, height: 800 },
});
// Polls `expression` with page.evaluate (DevTools evaluation, which the page's CSP allows;
// waitForFunction evaluates a string with eval, which the portal's CSP refuses), across
// navigations, until it is truthy.
async function until(page, expression, timeout) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      if (await page.evaluate(expression)) return;
    } catch (e) {
      if (!/context was destroyed|navigat/i.test(String(e))) throw e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${expression}`);
    await page.waitForTimeout(100);
  }
}

const out = { results: {}, errors: [], httpErrors: [], offsite: [], requests: [] };
// Chromium logs each HTTP error status of a fetch as a console error: kept apart, so that
// a test of a refusal can expect them and every other test refuses them.
const HTTP_ERROR = /^Failed to load resource: the server responded with a status of (\d+)/;
try {
  await context.route("**/*", (route) => {
    const url = route.request().url();
    const to = new URL(url).origin;
    if (to === origin || alsoAllowed.includes(to)) return route.continue();
    out.offsite.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const http = HTTP_ERROR.exec(m.text());
    if (http) out.httpErrors.push(Number(http[1])); else out.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => out.errors.push(`page: ${e}`));
  page.on("request", (r) => out.requests.push({ method: r.method(), url: r.url(),
    authorization: r.headers()["authorization"] !== undefined }));
  const url = (path) => new URL(path, nodeUrl).href;
  for (const s of steps) {
    const timeout = s.timeout ?? 30000;
    switch (s.do) {
      case "goto": await page.goto(url(s.path), { waitUntil: "load" }); break;
      case "fill": await page.fill(s.selector, s.value); break;
      case "select": await page.selectOption(s.selector, s.value); break;
      case "check": await page.check(s.selector); break;
      case "click": await page.click(s.selector); break;
      case "press": await page.press(s.selector, s.key); break;
      case "wait": await page.waitForSelector(s.selector, { state: s.state ?? "visible", timeout }); break;
      case "waitFor": await until(page, s.expression, timeout); break;
      case "text": out.results[s.as] = await page.innerText(s.selector); break;
      case "texts": out.results[s.as] = await page.locator(s.selector).allInnerTexts(); break;
      case "attr": out.results[s.as] = await page.getAttribute(s.selector, s.name); break;
      case "eval": out.results[s.as] = await page.evaluate(s.expression); break;
      case "url": out.results[s.as] = page.url(); break;
      case "screenshot": await page.screenshot({ path: s.path, fullPage: true }); break;
      default: throw new Error(`unknown step ${JSON.stringify(s)}`);
    }
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out));
