import { expect, test } from '@playwright/test';
import { mockApi, pushNext, type Answer } from './mock-api';
import { screens } from './screens';

// Importing the single-user version's data against the mocked API: offered by the
// onboarding wizard; a zip is checked, uploaded through its presigned URL, started, and
// followed live to its report, downloaded as text and JSON; a second import while one
// runs is refused with the reason.

const now = '2026-11-20T10:00:00Z';
const files = (imported: number) => [
  { file: 'marketplace_accounts.jsonl', records: 1, valid: 1, rejected: 0, alreadyImported: 0, toImport: 1, imported: Math.min(imported, 1) },
  { file: 'drafts.jsonl', records: 120, valid: 118, rejected: 2, alreadyImported: 0, toImport: 118, imported: Math.min(imported, 118) },
  { file: 'photos.jsonl', records: 300, valid: 300, rejected: 0, alreadyImported: 0, toImport: 300, imported: Math.min(imported, 300) },
  { file: 'jobs.jsonl', records: 40, valid: 40, rejected: 0, alreadyImported: 0, toImport: 40, imported: Math.min(imported, 40) },
  { file: 'job_logs.jsonl', records: 200, valid: 200, rejected: 0, alreadyImported: 0, toImport: 200, imported: Math.min(imported, 200) },
];
const imp = (over: Record<string, unknown> = {}) => ({
  id: 'i1',
  status: 'QUEUED',
  fileName: 'historique.zip',
  byteSize: 48_000_000,
  recordsDone: 0,
  recordsTotal: 0,
  progress: 0,
  rejected: 0,
  error: null,
  files: [],
  createdAt: now,
  finishedAt: null,
  ...over,
});
const succeeded = imp({ status: 'SUCCEEDED', recordsDone: 659, recordsTotal: 659, progress: 1, rejected: 3, files: files(1000), finishedAt: now });
const earlier = imp({ id: 'i0', fileName: 'essai.zip', status: 'FAILED', error: 'entry photos/big.png unpacks to more than the 1000 bytes it declares: refused as a zip bomb', createdAt: '2026-11-19T09:00:00Z' });
const reportText = 'plinth import: import of historique.zip into account u1\nrejected records (3):\n  drafts.jsonl:4 (id d4): status: "SOLD" is not one of DRAFT, READY, PUBLISHED, ARCHIVED\n  drafts.jsonl:9 (id d9): title: holds the control character U+0007\n  ../evil:0: zip entry: its path leaves the folder (absolute, or with ..)\n';

function answers(list: unknown[]): Record<string, Answer> {
  return {
    ImportPage: () => ({ data: { imports: list, importMaxBytes: 536_870_912 } }),
    ReserveImport: { data: { createImportUpload: { uploadId: 'up1', uploadUrl: '/storage/i/u1/up1?sig=abc', method: 'PUT', headers: [{ name: 'Content-Type', value: 'application/zip' }], expiresAt: now } } },
    StartImport: { data: { startImport: imp() } },
    ImportReport: { data: { import: { id: 'i1', fileName: 'historique.zip', report: { files: files(1000), rejected: [{ file: '../evil', line: 0, id: null, reason: 'zip entry: its path leaves the folder' }] }, reportText } } },
  };
}

const zip = Buffer.from('504b0506000000000000000000000000000000000000', 'hex');

test('the wizard offers the import; a zip is uploaded, followed live, and its report downloaded', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...answers([]),
      OnboardingState: { data: { me: { id: 'u1', email: 'lea@example.com', emailVerified: false }, marketplaceAccounts: [], dashboard: { photoCount: 0 }, drafts: { nodes: [] }, jobs: { nodes: [] } } },
    },
  });
  const puts: { method: string; type: string | undefined }[] = [];
  await page.route('**/storage/i/u1/**', (r) => {
    puts.push({ method: r.request().method(), type: r.request().headers()['content-type'] });
    return r.fulfill({ status: 200 });
  });
  await page.goto('/app/onboarding');
  await expect(page.getByText('Vous venez de la version mono-utilisateur ?')).toBeVisible();
  await page.getByRole('link', { name: 'Importer mes données' }).click();
  await expect(page).toHaveURL(/\/app\/import$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Importer vos données');
  await expect(page.getByText('Aucun import pour l’instant.')).toBeVisible();

  const picker = page.getByLabel('Archive zip du dossier à importer');
  await picker.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await expect(page.getByRole('listitem').filter({ hasText: 'notes.txt' })).toContainText('Type de fichier non accepté.');
  await picker.setInputFiles({ name: 'historique.zip', mimeType: 'application/zip', buffer: zip });
  await expect(page.getByRole('listitem').filter({ hasText: 'historique.zip' })).toContainText('Envoyé');
  expect(rec.graphql.find((g) => g.operationName === 'ReserveImport')?.variables).toEqual({ byteSize: zip.length });
  expect(rec.graphql.find((g) => g.operationName === 'StartImport')?.variables).toEqual({ uploadId: 'up1', fileName: 'historique.zip' });
  expect(puts).toEqual([{ method: 'PUT', type: 'application/zip' }]);

  // Live progress from importUpdated.
  await expect(page.getByRole('heading', { name: 'Import en cours' })).toBeVisible();
  await expect(page.getByText('L’archive est en cours de vérification…')).toBeVisible();
  await expect.poll(() => [...rec.subs.values()]).toContain('ImportUpdated');
  pushNext(rec, 'ImportUpdated', { importUpdated: imp({ status: 'RUNNING', recordsDone: 330, recordsTotal: 659, progress: 330 / 659 }) });
  await expect(page.getByRole('progressbar', { name: 'Import en cours' })).toHaveAttribute('aria-valuenow', '50');
  await expect(page.getByText(/330 \/ 659 enregistrements/)).toBeVisible();
  expect(rec.subscribed.filter((n) => n === 'ImportUpdated')).toHaveLength(1);
  pushNext(rec, 'ImportUpdated', { importUpdated: succeeded });
  await expect(page.getByText('Import terminé : 659 enregistrements importés, 0 déjà présent, 3 rejetés.')).toBeVisible();
  await expect(page.getByRole('row', { name: /drafts\.jsonl/ })).toContainText('118');
  await expect(page.getByRole('heading', { name: 'Import en cours' })).toHaveCount(0);

  // The report, as text and as JSON.
  const [text] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Télécharger le rapport (texte)' }).click()]);
  expect(text.suggestedFilename()).toBe('historique-report.txt');
  expect(await streamText(await text.createReadStream())).toContain('its path leaves the folder');
  const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Télécharger le rapport (JSON)' }).click()]);
  expect(json.suggestedFilename()).toBe('historique-report.json');
  expect(JSON.parse(await streamText(await json.createReadStream())).rejected[0].file).toBe('../evil');
  await page.screenshot({ path: 'e2e/screenshots/app-import-done-1280.png', fullPage: true });
});

test('a second import while one runs is refused with the reason; a failed one says how to resume', async ({ page }) => {
  await mockApi(page, {
    signedIn: true,
    answers: {
      ...answers([earlier]),
      StartImport: { errors: [{ message: 'an import of this account is already queued or running: wait for it to end', extensions: { code: 'CONFLICT', requestId: 'r1' } }] },
    },
  });
  await page.route('**/storage/i/u1/**', (r) => r.fulfill({ status: 200 }));
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await page.goto('/app/import');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Import your data');
  await expect(page.getByText('The import stopped')).toBeVisible();
  await expect(page.getByText('refused as a zip bomb')).toBeVisible();
  await expect(page.getByText('What was imported stays: start the import again')).toBeVisible();
  await page.getByLabel('Zip archive of the folder to import').setInputFiles({ name: 'again.zip', mimeType: 'application/zip', buffer: zip });
  await expect(page.getByRole('alert').filter({ hasText: 'An import is already running on this account' })).toBeVisible();
  await expect(page.getByRole('listitem').filter({ hasText: 'again.zip' }).getByRole('button', { name: 'Try again' })).toBeVisible();
});

async function streamText(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

screens(
  [
    { path: '/app/import', name: 'app-import', signedIn: true, h1: /Importer vos données/, answers: answers([succeeded, earlier]) },
    {
      path: '/app/import',
      name: 'app-import-running-en',
      signedIn: true,
      h1: /Import your data/,
      locale: 'en',
      answers: answers([imp({ status: 'RUNNING', recordsDone: 200, recordsTotal: 659, progress: 200 / 659 }), earlier]),
    },
  ],
  {},
);
