// End-to-end test of the console in headless Chromium (Debian's package,
// driven by playwright-core), against a running `flowlens demo`:
//   node console/e2e/console.mjs http://127.0.0.1:9290/ <screenshot dir>
// Checks each view against what the demo's lab does, saves a screenshot of
// each, fails on any error in the browser's console, and prints the
// console's figures (paint, table render, refresh) as one JSON line.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.argv[2] ?? "http://127.0.0.1:9290/";
const shots = process.argv[3] ?? "console-screenshots";
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.FLOWLENS_CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const errors = [];
const figures = {};
let failed = false;

async function newPage(width = 1440, height = 900) {
  const page = await browser.newPage({ viewport: { width, height } });
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`${page.url()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`${page.url()}: ${err.message}`));
  return page;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, run) {
  const started = Date.now();
  try {
    await run();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

/** The text of every cell of one column of the shown table. */
async function column(page, id) {
  return page.locator(`table.data tbody td[data-col="${id}"]`).allInnerTexts();
}

async function rowsLoaded(page) {
  await page.waitForFunction(() => document.querySelectorAll("table.data tbody tr").length > 0, null, { timeout: 15000 });
}

await step("overview paints its panels, with the lab's DNS errors and drops", async () => {
  const page = await newPage();
  await page.goto(base);
  await page.waitForFunction(() => performance.getEntriesByName("flowlens:overview-data").length > 0, null, { timeout: 15000 });
  figures.overview_meaningful_paint_ms = await page.evaluate(
    () => performance.getEntriesByName("flowlens:overview-data")[0].startTime,
  );
  figures.first_contentful_paint_ms = await page.evaluate(
    () => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
  );
  const rcodes = await page.locator("#panel-dns-rcodes table").innerText();
  check(rcodes.includes("NXDomain"), `DNS response codes panel lacks NXDomain: ${rcodes}`);
  const causes = await page.locator("#panel-drops-cause table").innerText();
  check(causes.includes("NETFILTER_DROP"), `drop cause panel lacks NETFILTER_DROP: ${causes}`);
  const outcomes = await page.locator("#panel-outcomes table").innerText();
  for (const o of ["refused", "timed_out"]) check(outcomes.includes(o), `outcomes panel lacks ${o}: ${outcomes}`);
  await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });
  // A panel's bar opens the flow table filtered to it.
  // (by keyboard: the panel's data table is there for screen readers)
  await page.locator("#panel-drops-cause table button", { hasText: "NETFILTER_DROP" }).focus();
  await page.keyboard.press("Enter");
  await rowsLoaded(page);
  check(new URL(page.url()).searchParams.get("filter")?.includes("NETFILTER_DROP"), `panel click gave ${page.url()}`);
  await page.close();
});

let dnsErrorsUrl = "";
await step("DNS errors quick filter shows NXDomain rows from the DNS workload", async () => {
  const page = await newPage();
  await page.goto(`${base}?view=flows`);
  await rowsLoaded(page);
  await page.locator('[data-quick="dns_errors"]').click();
  await page.waitForFunction(() => new URL(location.href).searchParams.get("quick") === "dns_errors");
  // The table shows the filtered rows once every row is a DNS error.
  await page.waitForFunction(
    () => {
      const cells = [...document.querySelectorAll('td[data-col="dns_rcode"]')].map((td) => td.textContent);
      return cells.length > 0 && cells.every((c) => c && c !== "NoError") && cells.includes("NXDomain");
    },
    null,
    { timeout: 15000 },
  );
  const rcodes = await column(page, "dns_rcode");
  check(rcodes.length > 0 && rcodes.every((r) => r && r !== "NoError"), `rows that are not DNS errors: ${rcodes}`);
  const sources = await column(page, "src");
  const fromDns = sources.filter((s, i) => s === "infra/dns" && rcodes[i] === "NXDomain");
  check(fromDns.length > 0, `no NXDomain answer from infra/dns among ${sources}`);
  dnsErrorsUrl = page.url();
  await page.screenshot({ path: join(shots, "flows-dns-errors.png"), fullPage: true });
  // The details drawer explains every field.
  await page.locator("table.data tbody tr").first().click();
  const drawer = await page.locator(".drawer").innerText();
  check(drawer.includes("DnsFlagsResponseCode") && drawer.includes("filter: dns.rcode"), "drawer lacks the DNS fields");
  await page.screenshot({ path: join(shots, "flow-details.png") });
  await page.keyboard.press("Escape");
  await page.close();
});

await step("drops view shows NETFILTER_DROP", async () => {
  const page = await newPage();
  await page.goto(`${base}?view=flows&quick=drops&columns=end,src,dst,dst_addr,proto,drop_packets,drop_cause,drop_state`);
  await page.waitForFunction(
    () => [...document.querySelectorAll('td[data-col="drop_cause"]')].some((td) => td.textContent === "NETFILTER_DROP"),
    null,
    { timeout: 15000 },
  );
  const drops = await column(page, "drop_packets");
  check(drops.every((d) => Number(d) > 0), `rows without drops: ${drops}`);
  await page.screenshot({ path: join(shots, "flows-drops.png"), fullPage: true });
  await page.close();
});

await step("a URL with filters reproduces the view", async () => {
  check(dnsErrorsUrl, "no URL from the DNS errors step");
  const page = await newPage();
  await page.goto(dnsErrorsUrl);
  await rowsLoaded(page);
  check((await page.locator("#tab-flows").getAttribute("aria-selected")) === "true", "flows tab not selected");
  check((await page.locator('[data-quick="dns_errors"]').getAttribute("aria-pressed")) === "true", "quick filter not on");
  const typed = `${base}?view=flows&filter=${encodeURIComponent("dns.rcode = NXDomain and src.name = dns")}&since=30m&sort=end&order=asc`;
  await page.goto(typed);
  await rowsLoaded(page);
  check((await page.inputValue("#filter-input")) === "dns.rcode = NXDomain and src.name = dns", "filter text not restored");
  const rcodes = await column(page, "dns_rcode");
  check(rcodes.length > 0 && rcodes.every((r) => r === "NXDomain"), `filter not applied: ${rcodes}`);
  check((await page.locator('th[aria-sort="ascending"]').count()) === 1, "sort not restored");
  await page.close();
});

await step("filter bar completes fields and shows the API's errors inline", async () => {
  const page = await newPage();
  await page.goto(`${base}?view=flows`);
  await page.locator("#filter-input").click();
  await page.keyboard.type("dns.rc");
  await page.waitForSelector("#filter-completions li", { timeout: 5000 });
  const items = await page.locator("#filter-completions li code").allInnerTexts();
  check(items.includes("dns.rcode"), `completions: ${items}`);
  const at = items.indexOf("dns.rcode");
  for (let i = 0; i < at; i++) await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Tab");
  check((await page.inputValue("#filter-input")).startsWith("dns.rcode "), "completion not accepted");
  await page.fill("#filter-input", "dns.rcod = 3");
  await page.waitForFunction(() => document.getElementById("filter-error")?.textContent.includes("`dns.rcod`"), null, { timeout: 5000 });
  const error = await page.locator("#filter-error").innerText();
  check(error.includes("did you mean") && error.includes("dns.rcode"), `error: ${error}`);
  await page.screenshot({ path: join(shots, "filter-error.png") });
  await page.close();
});

await step("conversations explain themselves and lead to their flows", async () => {
  const page = await newPage();
  await page.goto(`${base}?view=conversations`);
  check((await page.locator(".explain").innerText()).includes("conversation"), "no explanation");
  await rowsLoaded(page);
  await page.screenshot({ path: join(shots, "conversations.png"), fullPage: true });
  await page.locator("table.data tbody tr").first().click();
  await page.locator(".drawer button.primary").click();
  await page.waitForFunction(() => new URL(location.href).searchParams.get("view") === "flows");
  await rowsLoaded(page);
  check((await page.inputValue("#filter-input")).includes("src.addr"), "flows of the conversation not filtered");
  await page.close();
});

await step("topology shows the lab's workloads", async () => {
  const page = await newPage();
  await page.goto(`${base}?view=topology`);
  await page.waitForSelector("#topology-edges tbody tr", { timeout: 15000 });
  const text = await page.locator("#topology-edges").innerText();
  for (const w of ["frontend", "backend", "database", "dns"]) check(text.includes(w), `topology lacks ${w}`);
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(shots, "topology.png"), fullPage: true });
  await page.goto(`${base}?view=topology&scope=namespace`);
  await page.waitForSelector("#topology-edges tbody tr", { timeout: 15000 });
  const ns = await page.locator("#topology-edges").innerText();
  for (const n of ["shop", "data", "infra"]) check(ns.includes(n), `namespace topology lacks ${n}`);
  await page.screenshot({ path: join(shots, "topology-namespaces.png"), fullPage: true });
  await page.close();
});

await step("a 1000-row flow table renders", async () => {
  const page = await newPage();
  await page.goto(`${base}?view=flows&limit=1000&since=1h`);
  await page.waitForFunction(() => Number(document.querySelector("table.data")?.dataset.rows) >= 1000, null, { timeout: 20000 });
  figures.table_1000_rows_render_ms = Number(await page.locator("table.data").getAttribute("data-render-ms"));
  // Baseline in the same browser and run: the same 1000 rows as static HTML
  // set at once with innerHTML, laid out.
  figures.baseline_static_table_1000_rows_ms = await page.evaluate(() => {
    const cols = document.querySelectorAll("table.data thead th").length;
    const cell = "<td>198.18.10.20:8080</td>".repeat(cols);
    const html = `<table class="data"><tbody>${`<tr>${cell}</tr>`.repeat(1000)}</tbody></table>`;
    const box = document.createElement("div");
    const t0 = performance.now();
    box.innerHTML = html;
    document.body.appendChild(box);
    void box.offsetHeight;
    const took = performance.now() - t0;
    box.remove();
    return took;
  });
  await page.close();
});

await step("dark theme and a narrow screen", async () => {
  const page = await newPage(600, 900);
  await page.goto(base);
  await page.selectOption(".theme-switch select", "dark");
  await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bg !== "rgb(255, 255, 255)" && bg !== "rgb(246, 247, 249)", `dark background is ${bg}`);
  await page.waitForFunction(() => performance.getEntriesByName("flowlens:overview-data").length > 0, null, { timeout: 15000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the page is ${overflow}px wider than a 600px screen`);
  await page.screenshot({ path: join(shots, "overview-dark-narrow.png"), fullPage: true });
  await page.close();
});

/** Time from a key press in the filter bar to the next frame, sampled for `ms`. */
async function inputDelays(page, ms) {
  const delays = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await page.locator("#filter-input").focus();
    delays.push(
      await page.evaluate(
        () =>
          new Promise((resolve) => {
            const t0 = performance.now();
            document.getElementById("filter-input").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
            requestAnimationFrame(() => resolve(performance.now() - t0));
          }),
      ),
    );
    await page.waitForTimeout(250);
  }
  return delays.sort((a, b) => a - b);
}

await step("auto-refresh every 5 s keeps the page responsive", async () => {
  const page = await newPage();
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: "longtask", buffered: true });
  });
  await page.goto(`${base}?refresh=5`);
  await page.waitForFunction(() => performance.getEntriesByName("flowlens:overview-data").length > 0, null, { timeout: 15000 });
  await page.evaluate(() => (window.__longTasks = []));
  const delays = await inputDelays(page, 16000);
  const tasks = await page.evaluate(() => window.__longTasks);
  delays.sort((a, b) => a - b);
  figures.refresh_5s_input_delay_p50_ms = delays[Math.floor(delays.length / 2)];
  figures.refresh_5s_input_delay_max_ms = delays[delays.length - 1];
  figures.refresh_5s_long_tasks = tasks.length;
  figures.refresh_5s_longest_task_ms = tasks.length ? Math.max(...tasks) : 0;
  check(figures.refresh_5s_input_delay_max_ms < 500, `input waited ${figures.refresh_5s_input_delay_max_ms} ms`);
  // Baseline: the same overview without auto-refresh.
  await page.goto(base);
  await page.waitForFunction(() => performance.getEntriesByName("flowlens:overview-data").length > 0, null, { timeout: 15000 });
  const quiet = await inputDelays(page, 8000);
  figures.baseline_no_refresh_input_delay_p50_ms = quiet[Math.floor(quiet.length / 2)];
  figures.baseline_no_refresh_input_delay_max_ms = quiet[quiet.length - 1];
  await page.close();
});

await browser.close();
if (errors.length) {
  failed = true;
  console.log(`FAIL the browser console had ${errors.length} error(s):\n  ${errors.join("\n  ")}`);
}
console.log(`FIGURES ${JSON.stringify(figures)}`);
process.exit(failed ? 1 : 0);
