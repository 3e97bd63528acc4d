// The console against a server that requires API tokens (over HTTPS, with
// the test's own CA): it asks for a token once, keeps it for the tab (a
// reload asks nothing), asks again in a new tab, asks again when a token
// is refused, and shows only what the token's scope allows.
//   node console/e2e/token.mjs https://127.0.0.1:PORT/ TOKEN NAME-OUTSIDE-SCOPE
// NAME-OUTSIDE-SCOPE is a namespace the token must never show.

import { chromium } from "playwright-core";

const base = process.argv[2];
const token = process.argv[3];
const hidden = process.argv[4];

const browser = await chromium.launch({
  executablePath: process.env.FLOWLENS_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});

let failed = false;
const errors = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, run) {
  try {
    await run();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

/** A tab of its own (its own sessionStorage); the server's certificate is the test CA's. */
async function newTab() {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("console", (msg) => {
    // The 401s that make the console ask are expected.
    if (msg.type() === "error" && !msg.text().includes("401")) errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));
  return page;
}

async function enter(page, value) {
  await page.locator("form.token-form input[name=token]").waitFor({ timeout: 15000 });
  await page.locator("form.token-form input[name=token]").fill(value);
  await page.locator("form.token-form button[type=submit]").click();
}

async function rows(page) {
  await page.waitForFunction(() => document.querySelectorAll("table.data tbody tr:not(.spacer)").length > 0, null, {
    timeout: 15000,
  });
  return page.locator("table.data").innerText();
}

await step("asks for a token once, keeps it for the tab, shows only the scope", async () => {
  const page = await newTab();
  await page.goto(`${base}?view=flows`);
  await enter(page, token);
  const table = await rows(page);
  check(table.includes("shop"), `the scoped flows are not shown: ${table.slice(0, 400)}`);
  check(!table.includes(hidden), `a namespace outside the scope is shown: ${hidden}`);
  const stored = await page.evaluate(() => sessionStorage.getItem("flowlens.token"));
  check(stored === token, "the token is not kept for the tab");
  await page.reload();
  await rows(page);
  check((await page.locator("form.token-form").count()) === 0, "asked again after a reload");
  await page.goto(`${base}?view=topology`);
  await page.waitForTimeout(1500);
  check((await page.locator("form.token-form").count()) === 0, "asked again in another view");
  const body = await page.locator("body").innerText();
  check(!body.includes(hidden), `the topology shows ${hidden}`);
  await page.context().close();
});

await step("a new tab asks again; a refused token is asked for again", async () => {
  const page = await newTab();
  await page.goto(`${base}?view=flows`);
  await enter(page, "not-the-token");
  await page.locator("form.token-form").waitFor({ timeout: 15000 });
  const why = await page.locator("form.token-form").innerText();
  check(why.includes("refused"), `no word of the refusal: ${why}`);
  await enter(page, token);
  await rows(page);
  await page.context().close();
});

await browser.close();
if (errors.length) {
  failed = true;
  console.log(`FAIL the browser console had errors:\n  ${errors.join("\n  ")}`);
}
process.exit(failed ? 1 : 0);
