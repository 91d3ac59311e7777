// What the journeys against the real server share: step timings, screenshots with the
// axe check, the verification mail (read from the .eml the file mailer wrote), a real
// JPEG, GraphQL as another client, and signing up and in.
import AxeBuilder from '@axe-core/playwright';
import { expect, type APIRequestContext, type Page } from '@playwright/test';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = resolve(here, '../screenshots');
const RESULTS = resolve(here, '../../test-results');

export const PASSWORD = 'a long enough password';

/** A fresh address for one journey's user. */
export function freshEmail(who: string): string {
  return `${who}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

/** Milliseconds each step took, in order; printed and saved to test-results/journey-timings-<name>.json. */
export class Clock {
  readonly steps: { step: string; ms: number }[] = [];
  #last = Date.now();
  readonly #start = this.#last;

  constructor(readonly name: string) {}

  lap(step: string): void {
    const now = Date.now();
    this.steps.push({ step, ms: now - this.#last });
    this.#last = now;
  }

  report(): void {
    const total = Date.now() - this.#start;
    console.log(`${this.name}:`);
    console.log(this.steps.map((s) => `  ${s.step.padEnd(52)} ${(s.ms / 1000).toFixed(2)} s`).join('\n'));
    console.log(`  ${'whole journey'.padEnd(52)} ${(total / 1000).toFixed(2)} s`);
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, `journey-timings-${this.name}.json`), JSON.stringify({ steps: this.steps, totalMs: total }, null, 2));
  }
}

/** No serious or critical axe violation on the page as it is now. */
export async function noSeriousViolations(page: Page): Promise<void> {
  const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** A full-page screenshot to e2e/screenshots/server-<name>.png, after the axe check (unless `axe` is false). */
export async function shot(page: Page, name: string, { axe = true } = {}): Promise<void> {
  if (axe) await noSeriousViolations(page);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `server-${name}.png`), fullPage: true });
}

/** The console errors about the Content-Security-Policy the page logs, collected. */
export function cspErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) errors.push(m.text());
  });
  return errors;
}

/** The verification link of the mail the file mailer wrote for `email` (waits for it). */
export async function verificationLink(email: string): Promise<string> {
  const dir = join(process.env.PLINTH_E2E_DATA_DIR ?? '', 'mail');
  let link: string | undefined;
  await expect
    .poll(
      () => {
        let files: string[] = [];
        try {
          files = readdirSync(dir).filter((f) => f.endsWith('.eml'));
        } catch {
          // Not written yet.
        }
        for (const f of files) {
          const eml = readFileSync(join(dir, f), 'utf8');
          if (!eml.includes(email)) continue;
          link = eml.match(/https?:\/\/\S+\/verify-email\?token=[A-Za-z0-9._~-]+/)?.[0];
          if (link) return true;
        }
        return false;
      },
      { message: `a verification mail to ${email} in ${dir}`, timeout: 20_000 },
    )
    .toBe(true);
  return link!;
}

/** A real JPEG of `width` × `height`, encoded by the browser. */
export async function jpeg(page: Page, width: number, height: number): Promise<Buffer> {
  const dataUrl = await page.evaluate(
    ([w, h]) => {
      const canvas = document.createElement('canvas');
      canvas.width = w!;
      canvas.height = h!;
      const g = canvas.getContext('2d')!;
      const gradient = g.createLinearGradient(0, 0, w!, h!);
      gradient.addColorStop(0, '#1d4ed8');
      gradient.addColorStop(1, '#f59e0b');
      g.fillStyle = gradient;
      g.fillRect(0, 0, w!, h!);
      return canvas.toDataURL('image/jpeg', 0.9);
    },
    [width, height],
  );
  const bytes = Buffer.from(dataUrl.split(',')[1]!, 'base64');
  expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  return bytes;
}

/** One GraphQL request as another client (bearer token or anonymous); its data, or the test fails. */
export async function graphql(request: APIRequestContext, token: string | null, query: string, variables: object = {}) {
  const res = await request.post(new URL('/graphql', process.env.PLINTH_E2E_URL).href, {
    data: { query, variables },
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  expect(res.ok(), `POST /graphql ${res.status()}`).toBe(true);
  const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data!;
}

/** Registers `email` through the public API (the contract's `register`). */
export async function register(request: APIRequestContext, email: string): Promise<void> {
  await graphql(request, null, 'mutation($i: RegisterInput!) { register(input: $i) { user { id } } }', {
    i: { email, password: PASSWORD },
  });
}

/** Signs in through the web app's form; lands on /app (whose overview opens the onboarding wizard for a new account). */
export async function signIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('Adresse e-mail').fill(email);
  await page.getByLabel('Mot de passe').fill(password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await expect(page).toHaveURL(/\/app(\/onboarding)?$/);
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
}
