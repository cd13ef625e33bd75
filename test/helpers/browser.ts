/**
 * Opens an HTML file in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core, which downloads no browser) and reads what the page actually rendered: a plot
 * whose path the browser could not draw has a total length of 0 there, whatever its markup says.
 * It also holds the page to opening with no network: any request that is not for a file: URL is
 * aborted and makes it throw, and so does any console error (a Content-Security-Policy violation
 * is one).
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export interface RenderedPlot {
  id: string;
  series: { name: string; points: number; pathLength: number }[];
}

// The page callbacks below run in the browser, where the DOM exists; this project compiles
// without lib.dom, so these declare just what the callbacks use.
interface DomPath {
  getAttribute(name: string): string | null;
  getTotalLength(): number;
}
interface DomSvg {
  id: string;
  querySelectorAll(selector: string): ArrayLike<DomPath>;
}
declare const document: { querySelectorAll(selector: string): ArrayLike<DomSvg> };

export async function renderedPlots(htmlFile: string): Promise<RenderedPlot[]> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: run \`npm run setup\` (it installs Debian's chromium package)`);
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'], headless: true });
  try {
    const page = await browser.newPage();
    const requests: string[] = [];
    const consoleErrors: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) requests.push(r.url());
    });
    // Recorded above, and never let out: the test neither waits on nor depends on a remote host.
    await page.route(/^(?!file:)/, (route) => route.abort('blockedbyclient'));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });
    const plots = await page.evaluate(() =>
      Array.from(document.querySelectorAll('svg[id^="plot-"]')).map((svg) => ({
        id: svg.id,
        series: Array.from(svg.querySelectorAll('path.series')).map((p) => ({
          name: p.getAttribute('data-series') ?? '',
          // Points as the browser parsed them: one M or L command per point.
          points: (p.getAttribute('d') ?? '').match(/[MLml]/g)?.length ?? 0,
          pathLength: p.getTotalLength(),
        })),
      })),
    );
    if (requests.length > 0) throw new Error(`${htmlFile} made network requests: ${requests.join(', ')}`);
    if (consoleErrors.length > 0) throw new Error(`${htmlFile} logged errors: ${consoleErrors.join(' | ')}`);
    return plots;
  } finally {
    await browser.close();
  }
}
