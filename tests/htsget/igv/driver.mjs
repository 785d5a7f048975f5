// Drives igv.js in headless Chromium (playwright-core, Debian's /usr/bin/chromium):
// node driver.mjs PAGE_URL NODE_URL READS_ID VARIANTS_ID OUT_DIR LOCUS...
// Prints {"<locus>": {"alignment": [...], "variant": [...]}, ...} as JSON.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [pageUrl, nodeUrl, readsId, variantsId, outDir, ...loci] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "fednode-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1100, height: 700 },
});
try {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.igv !== undefined);
  await page.evaluate(([n, r, v]) => window.loadTracks(n, r, v), [nodeUrl, readsId, variantsId]);
  const result = {};
  for (const [i, locus] of loci.entries()) {
    // The last locus is the variants' one: the variant track is added there.
    const last = i === loci.length - 1;
    result[locus] = await page.evaluate(([l, v]) => window.inView(l, v), [locus, last]);
    await page.screenshot({ path: join(outDir, `igv-${i}.png`) });
  }
  result.errors = errors;
  process.stdout.write(JSON.stringify(result));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
