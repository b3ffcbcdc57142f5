// Drives headless Chromium (Debian's) with playwright-core against the status page:
//   node status_page.mjs URL BACKEND SCREENSHOT
// prints "UP" once BACKEND (cluster/service/address) shows up, then "DOWN" when it shows
// down (the test kills it in between), saves SCREENSHOT, and exits 0; any failure exits 1.
import { chromium } from "playwright-core";

const [url, backend, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  const row = (state) => `[data-backend="${backend}"][data-state="${state}"]`;
  await page.waitForSelector(row("up"), { timeout: 15000 });
  await page.waitForSelector("#ready.up", { timeout: 5000 });
  console.log("UP");
  await page.waitForSelector(row("down"), { timeout: 20000 });
  console.log("DOWN");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  const text = await page.textContent("body");
  for (const want of ["Cluster", "req/s", "Reloads"]) {
    if (!text.includes(want)) throw new Error(`"${want}" not on the page`);
  }
  console.log("OK");
} catch (e) {
  console.error(String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
