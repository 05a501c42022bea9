// Drives pathwatch's status page in a real headless Chromium (Debian's /usr/bin/chromium).
// Usage: node status.mjs <pathwatch base URL> <demo base URL> <artefact dir>
// With PW_USER and PW_PASS set, pathwatch runs behind basic auth: the page must refuse a
// visitor without a login, and the browser logs in.
// Exits non-zero with a message on the first expectation that fails. Run by tests/browser.rs.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, demo, out] = process.argv.slice(2);
if (!base || !demo || !out) {
  console.error("usage: node status.mjs <pathwatch> <demo> <artefact dir>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

function check(ok, message) {
  if (!ok) throw new Error(message);
}

const user = process.env.PW_USER;
const login = user ? { username: user, password: process.env.PW_PASS } : undefined;
const auth = login
  ? { Authorization: "Basic " + Buffer.from(`${login.username}:${login.password}`).toString("base64") }
  : {};

async function api(path) {
  const r = await fetch(base + path, { headers: auth });
  check(r.ok, `${path}: HTTP ${r.status}`);
  return r.json();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  if (login) {
    const refused = await fetch(base + "/");
    check(refused.status === 401, `without a login the page answers HTTP ${refused.status}`);
  }
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, httpCredentials: login });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));

  // 1. Overview: every check has left UNKNOWN, and the page shows what the API says.
  await page.goto(base + "/");
  await page.waitForFunction(
    () => [...document.querySelectorAll("tbody tr")].every((r) => r.dataset.state !== "unknown"),
    null,
    { timeout: 30000 },
  );
  const { checks } = await api("/api/v1/checks");
  const rows = await page.$$eval("tbody tr", (trs) =>
    trs.map((r) => ({
      id: r.id,
      state: r.dataset.state,
      badge: r.querySelector(".badge").textContent.trim(),
    })));
  check(rows.length === checks.length, `${rows.length} rows for ${checks.length} checks`);
  for (const c of checks) {
    const row = rows.find((r) => r.id === `check-${c.name}`);
    check(row, `no row for ${c.name}`);
    check(row.state === c.state, `${c.name}: page says ${row.state}, API says ${c.state}`);
    check(row.badge.endsWith(c.state.toUpperCase()), `${c.name}: badge reads "${row.badge}"`);
  }
  check(checks.find((c) => c.name === "golden-path")?.state === "ok", "golden-path starts OK");
  await page.screenshot({ path: `${out}/overview.png`, fullPage: true });

  // 2. A fault injected into the running demo turns the row CRIT without a reload.
  await page.evaluate(() => { window.__notReloaded = true; });
  const put = await fetch(`${demo}/demo/fault?ws=drop:tool_completed`, { method: "PUT" });
  check(put.ok, `setting the demo fault: HTTP ${put.status}`);
  const injected = Date.now();
  await page.waitForSelector("#check-golden-path[data-state=crit]", { timeout: 30000 });
  const seconds = ((Date.now() - injected) / 1000).toFixed(1);
  check(await page.evaluate(() => window.__notReloaded === true), "the page was reloaded");
  const why = await page.textContent("#check-golden-path .why");
  check(why.includes("tool_completed never arrived"), `the row says: ${why}`);
  check((await page.title()).startsWith("CRIT"), `title: ${await page.title()}`);
  const counts = await page.textContent("header .summary");
  check(counts.includes("1 CRIT"), `the header counts were not refreshed: ${counts}`);
  await page.screenshot({ path: `${out}/overview-crit.png`, fullPage: true });

  // 3. The detail page: the waterfall names the missing event.
  await page.click("#check-golden-path a");
  await page.waitForSelector("tr[data-event=tool_completed] .missing-text");
  const missing = await page.textContent("tr[data-event=tool_completed]");
  check(missing.includes("missing"), `tool_completed row: ${missing}`);
  const svgText = await page.textContent("svg.wf");
  check(svgText.includes("never arrived"), "the waterfall marks the missing event");
  const arrived = await page.textContent("tr[data-event=agent_completed]");
  check(/\d+ ms/.test(arrived), `agent_completed row: ${arrived}`);
  await page.screenshot({ path: `${out}/detail.png`, fullPage: true });

  // 4. Phone width, dark mode: still readable, badges carry text.
  const phone = await browser.newPage({
    viewport: { width: 390, height: 844 }, colorScheme: "dark", httpCredentials: login,
  });
  await phone.goto(base + "/");
  const bg = await phone.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bg === "rgb(13, 17, 23)", `dark background: ${bg}`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the phone page scrolls sideways by ${overflow}px`);
  await phone.screenshot({ path: `${out}/overview-phone-dark.png`, fullPage: true });

  // 5. Badge for READMEs.
  const badge = await (await fetch(`${base}/badge/golden-path.svg`, { headers: auth })).text();
  check(badge.includes("golden-path: CRIT"), "badge text");

  await fetch(`${demo}/demo/fault`, { method: "DELETE" });
  check(problems.length === 0, problems.join("\n"));
  console.log(`status page OK: CRIT shown ${seconds} s after the fault; screenshots in ${out}`);
} finally {
  await browser.close();
}
