import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// A visitor's first visit, against the real server that global-setup.ts started: the
// pricing page, sign-up, the verification mail's link (read from the .eml the file
// mailer wrote), the signed-in app, a draft, a real JPEG, a scan finished by the
// server's in-process worker and seen live. Timings of each step are printed and saved
// to test-results/journey-timings.json; screenshots go to e2e/screenshots/server-*.png.

const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = resolve(here, '../screenshots');
const TIMINGS = resolve(here, '../../test-results/journey-timings.json');

test.use({ baseURL: process.env.PLINTH_E2E_URL });

/** Milliseconds each step took, in order. */
class Clock {
  readonly steps: { step: string; ms: number }[] = [];
  #last = Date.now();
  readonly #start = this.#last;

  lap(step: string): void {
    const now = Date.now();
    this.steps.push({ step, ms: now - this.#last });
    this.#last = now;
  }

  report(): void {
    const total = Date.now() - this.#start;
    console.log(this.steps.map((s) => `  ${s.step.padEnd(44)} ${(s.ms / 1000).toFixed(2)} s`).join('\n'));
    console.log(`  ${'whole journey'.padEnd(44)} ${(total / 1000).toFixed(2)} s`);
    mkdirSync(dirname(TIMINGS), { recursive: true });
    writeFileSync(TIMINGS, JSON.stringify({ steps: this.steps, totalMs: total }, null, 2));
  }
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `server-${name}.png`), fullPage: true });
}

/** The verification link of the mail the file mailer wrote for `email` (waits for it). */
async function verificationLink(email: string): Promise<string> {
  const dir = join(process.env.PLINTH_E2E_DATA_DIR ?? '', 'mail');
  let link: string | undefined;
  await expect
    .poll(
      () => {
        const files = (() => {
          try {
            return readdirSync(dir).filter((f) => f.endsWith('.eml'));
          } catch {
            return [];
          }
        })();
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

/** A real JPEG, encoded by the browser. */
async function jpeg(page: Page, width: number, height: number): Promise<Buffer> {
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

async function graphql(request: APIRequestContext, token: string | null, query: string, variables: object) {
  const res = await request.post('/graphql', {
    data: { query, variables },
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  expect(res.ok()).toBe(true);
  const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data!;
}

/**
 * Uploads `bytes` to the draft through the public API (presigned PUT, then confirm), as
 * the same user in another session: the web app's upload page is not built yet.
 */
async function uploadPhoto(request: APIRequestContext, email: string, password: string, draftId: string, bytes: Buffer) {
  const login = await graphql(request, null, 'mutation($i: LoginInput!) { login(input: $i) { accessToken } }', {
    i: { email, password },
  });
  const token = (login.login as { accessToken: string }).accessToken;
  const created = await graphql(
    request,
    token,
    'mutation($t: String!, $n: Int!, $d: ID) { createUpload(contentType: $t, byteSize: $n, draftId: $d) { photo { id } uploadUrl method headers { name value } } }',
    { t: 'image/jpeg', n: bytes.length, d: draftId },
  );
  const upload = created.createUpload as { photo: { id: string }; uploadUrl: string; headers: { name: string; value: string }[] };
  const put = await request.put(upload.uploadUrl, {
    data: bytes,
    headers: Object.fromEntries(upload.headers.map((h) => [h.name, h.value])),
  });
  expect(put.ok(), `PUT ${put.status()}`).toBe(true);
  await graphql(request, token, 'mutation($p: ID!, $d: ID) { confirmUpload(photoId: $p, draftId: $d) { id } }', {
    p: upload.photo.id,
    d: draftId,
  });
}

test('a visitor signs up from pricing, verifies the address, and scans a photo live', async ({ page, request }) => {
  const clock = new Clock();
  const email = `visitor-${Date.now()}@example.com`;
  const password = 'a long enough password';
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });

  await page.goto('/');
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await shot(page, 'landing');
  await page.goto('/pricing');
  await expect(page.getByRole('link', { name: 'Commencer gratuitement' })).toBeVisible();
  await shot(page, 'pricing');
  clock.lap('landing, then pricing');

  await page.getByRole('link', { name: 'Commencer gratuitement' }).click();
  await expect(page).toHaveURL(/\/signup\?plan=free/);
  await page.getByLabel('Adresse e-mail').fill(email);
  await page.getByLabel('Mot de passe').fill(password);
  await page.getByRole('checkbox', { name: /J’accepte les/ }).check();
  await page.getByRole('button', { name: 'Créer mon compte' }).click();
  await expect(page).toHaveURL(/\/app$/);
  await shot(page, 'app-first-visit');
  clock.lap('sign-up form to signed-in /app');

  const link = await verificationLink(email);
  expect(new URL(link).origin).toBe(new URL(process.env.PLINTH_E2E_URL!).origin);
  clock.lap('verification mail written (.eml)');
  await page.goto(link);
  await expect(page.getByText('Adresse confirmée')).toBeVisible();
  await shot(page, 'verified');
  await page.getByRole('link', { name: 'Aller à mon espace' }).click();
  await expect(page).toHaveURL(/\/app$/);
  clock.lap('verification link opened, address confirmed');

  // A reload keeps the session: the access token was in memory only, the HttpOnly
  // refresh cookie brings a new one.
  await page.reload();
  await expect(page).toHaveURL(/\/app$/);
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  expect((await page.context().cookies()).find((c) => c.name === 'plinth_refresh')?.httpOnly).toBe(true);
  clock.lap('reload restores the session (cookie)');

  await page.goto('/app/drafts#new');
  await page.getByLabel('Titre').fill('Veste en jean');
  await page.getByRole('button', { name: 'Créer le brouillon' }).click();
  await expect(page.getByText('Brouillon créé.')).toBeVisible();
  const edit = page.getByRole('link', { name: 'Veste en jean', exact: true });
  const href = (await edit.getAttribute('href')) ?? '';
  const draftId = href.split('/').pop()!;
  expect(draftId).toMatch(/^[0-9a-f-]{36}$/);
  clock.lap('draft created');

  await uploadPhoto(request, email, password, draftId, await jpeg(page, 64, 48));
  clock.lap('JPEG uploaded (API: presigned PUT, confirm)');

  await page.goto('/app/jobs');
  await expect(page.getByText('En direct')).toBeVisible();
  await page.getByRole('button', { name: 'Lancer une analyse' }).click();
  const list = page.getByRole('list', { name: 'Liste des tâches' });
  await expect(list.getByText('Terminée')).toBeVisible({ timeout: 30_000 });
  await shot(page, 'job-succeeded');
  clock.lap('scan started, SUCCEEDED seen live');

  await page.goto(`/app/drafts/${draftId}`);
  const photo = page.getByRole('img', { name: 'Photo 1' });
  await expect(photo).toBeVisible();
  await expect(photo).toHaveAttribute('width', '64');
  await shot(page, 'draft-with-photo');
  clock.lap('draft shows the scanned photo');

  clock.report();
  expect(errors.filter((e) => /Content Security Policy|Refused to/.test(e)), errors.join('\n')).toEqual([]);
});
