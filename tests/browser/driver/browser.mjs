// Headless Chromium through playwright-core: launching it, opening test pages, and every
// console error and uncaught page error of the run, attributed to the scenario that caused it.

import { createRequire } from 'node:module';
import { join } from 'node:path';

/** Chromium's flags on these machines (../shared/PEERS.md): no sandbox as root, no GPU, and no
 *  connection of Chromium's own to the closed network (updates, sync, first-run pages). */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const READY_TIMEOUT_MS = 15000;

/** playwright-core from `$TIDINGS_NODE_MODULES` (installed by `cargo xtask setup`). */
function loadPlaywright() {
  const modules = process.env.TIDINGS_NODE_MODULES;
  if (!modules) {
    throw new Error('TIDINGS_NODE_MODULES is not set (the node_modules directory holding playwright-core)');
  }
  const require = createRequire(join(modules, '..', 'package.json'));
  return require('playwright-core');
}

export class Browser {
  /** Launches `executable` headless. Playwright gives every launch a new, empty profile
   *  directory (its own `--user-data-dir`), removed when the browser closes. */
  static async launch(executable, extraFlags = []) {
    const { chromium } = loadPlaywright();
    const browser = await chromium.launch({
      executablePath: executable,
      headless: true,
      args: [...CHROMIUM_FLAGS, ...extraFlags],
      timeout: 30000,
    });
    return new Browser(browser);
  }

  constructor(browser) {
    this.browser = browser;
    this.version = browser.version();
    // Every console error and page error of the run: { scenario, page, type, text }.
    this.consoleErrors = [];
    this.scenario = '(none)';
    this.contexts = [];
  }

  /** A new browser context (its own cookies, cache and network state) with one test page
   *  loaded from `url`, once the wasm module is ready. `name` labels the page in reports. */
  async openPage(url, name) {
    const context = await this.browser.newContext({ viewport: { width: 900, height: 700 } });
    this.contexts.push(context);
    const page = await context.newPage();
    this.watch(page, name);
    await page.goto(url);
    await page.waitForFunction(
      () => window.harnessReady === true || window.harnessFailed !== undefined,
      null,
      { timeout: READY_TIMEOUT_MS, polling: 50 },
    );
    const failed = await page.evaluate(() => window.harnessFailed);
    if (failed !== undefined) throw new Error(`page ${name}: the wasm module did not load: ${failed}`);
    return { context, page, name };
  }

  /** The chat example's plain-JS page (the test server serves it at `/chat.html`, so that its
   *  client talks to the test server's `/ws` and `/sse`; the chat server itself at `/plain`);
   *  resolves once the page says it is connected. */
  async openChatPage(url, name, query = '', path = '/chat.html') {
    const context = await this.browser.newContext({ viewport: { width: 900, height: 700 } });
    this.contexts.push(context);
    const page = await context.newPage();
    this.watch(page, name);
    await page.goto(`${url}${path}${query}`);
    await page.waitForFunction(() => document.getElementById('status').className === 'open', null, {
      timeout: READY_TIMEOUT_MS,
      polling: 50,
    });
    return { context, page, name };
  }

  /** Records the page's console errors and uncaught errors; with `warnings`, its console
   *  warnings too (Leptos reports hydration problems there), and any console message that
   *  mentions hydration, whatever its level. */
  watch(page, name, { warnings = false } = {}) {
    const scenario = this.scenario;
    page.on('console', (msg) => {
      const type = msg.type();
      const text = msg.text();
      const counted = type === 'error' || (warnings && (type === 'warning' || /hydrat/i.test(text)));
      if (!counted) return;
      this.consoleErrors.push({ scenario, page: name, type: `console.${type}`, text });
    });
    page.on('pageerror', (error) => {
      this.consoleErrors.push({ scenario, page: name, type: 'pageerror', text: String(error) });
    });
  }

  /** Closes every context the current scenario opened. */
  async closeContexts() {
    const contexts = this.contexts;
    this.contexts = [];
    await Promise.all(contexts.map((c) => c.close().catch(() => {})));
  }

  async close() {
    await this.closeContexts();
    await this.browser.close();
  }
}

/** Calls `harness[method](...args)` in `page` and returns its result. */
export function call(tab, method, ...args) {
  return tab.page.evaluate(([m, a]) => window.harness[m](...a), [method, args]);
}
