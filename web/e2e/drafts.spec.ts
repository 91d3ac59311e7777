import { expect, test } from '@playwright/test';
import { mockApi, type Answer } from './mock-api';
import { screens } from './screens';

// The draft editor's photos against the mocked API: the same uploader as onboarding
// (checked in the browser, presigned PUT with progress, confirmed), the draft's photos
// listed, one deleted.

const now = '2026-11-20T10:00:00Z';
const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082', 'hex');
// A small blue-grey image the CSP allows (img-src data:), so thumbnails draw without a server.
const pixel = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEUlEQVR4nGPomn0EjhiI4wAAF2EekS+CsYoAAAAASUVORK5CYII=';
const photo = (id: string) => ({ id, url: pixel, width: 1200, height: 1600 });
const draft = (photos: unknown[]) => ({
  id: 'd1',
  title: 'Veste en jean Levi’s',
  description: 'Coupe droite, peu portée.',
  priceCents: 3500,
  currency: 'EUR',
  brand: 'Levi’s',
  size: 'M',
  condition: 'VERY_GOOD',
  category: 'Vestes',
  status: 'READY',
  createdAt: now,
  updatedAt: now,
  photos,
});

const answers: Record<string, Answer> = {
  Draft: { data: { draft: draft([photo('p1'), photo('p2')]) } },
  ReservePhoto: { data: { createUpload: { photo: { id: 'p3' }, uploadUrl: '/storage/u1/p3?sig=abc', method: 'PUT', headers: [{ name: 'Content-Type', value: 'image/png' }] } } },
  ConfirmPhoto: { data: { confirmUpload: photo('p3') } },
  DeletePhoto: { data: { deletePhoto: true } },
};

test('draft editor: add a photo (checked, uploaded with progress, confirmed), delete one', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, answers });
  const puts: { method: string; type: string | null; size: number }[] = [];
  await page.route('**/storage/u1/**', (r) => {
    puts.push({ method: r.request().method(), type: r.request().headers()['content-type'] ?? null, size: r.request().postDataBuffer()?.length ?? 0 });
    return r.fulfill({ status: 200 });
  });
  await page.goto('/app/drafts/d1');
  const photos = page.getByRole('region', { name: 'Photos' });
  const list = photos.getByRole('list', { name: 'Photos de l’article' });
  await expect(list.getByRole('img')).toHaveCount(2);

  const picker = photos.getByLabel('Choisir des photos');
  await picker.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await expect(photos.getByRole('listitem').filter({ hasText: 'notes.txt' })).toContainText('Type de fichier non accepté.');
  await picker.setInputFiles({ name: 'huge.jpg', mimeType: 'image/jpeg', buffer: Buffer.alloc(20 * 1024 * 1024 + 1) });
  await expect(photos.getByRole('listitem').filter({ hasText: 'huge.jpg' })).toContainText('Fichier trop volumineux (20 Mo au plus).');
  expect(rec.graphql.filter((g) => g.operationName === 'ReservePhoto')).toHaveLength(0);

  await picker.setInputFiles({ name: 'dos.png', mimeType: 'image/png', buffer: png });
  await expect(photos.getByRole('listitem').filter({ hasText: 'dos.png' })).toContainText('Envoyé');
  await expect(list.getByRole('img')).toHaveCount(3);
  await expect(list.getByRole('img', { name: 'Photo 3' })).toBeVisible();
  expect(puts).toEqual([{ method: 'PUT', type: 'image/png', size: png.length }]);
  expect(rec.graphql.find((g) => g.operationName === 'ReservePhoto')?.variables).toEqual({ contentType: 'image/png', byteSize: png.length, draftId: 'd1' });
  expect(rec.graphql.find((g) => g.operationName === 'ConfirmPhoto')?.variables).toEqual({ photoId: 'p3', draftId: 'd1' });

  await list.getByRole('button', { name: 'Supprimer la photo 1' }).click();
  await expect(list.getByRole('img')).toHaveCount(2);
  await expect(photos.getByText('Photo 1 supprimée.')).toBeAttached();
  expect(rec.graphql.find((g) => g.operationName === 'DeletePhoto')?.variables).toEqual({ id: 'p1' });
});

test('draft editor: a refused upload (storage quota) says what to do; a draft without photos says so', async ({ page }) => {
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await mockApi(page, {
    signedIn: true,
    answers: {
      ...answers,
      Draft: { data: { draft: draft([]) } },
      ReservePhoto: { data: null, errors: [{ message: 'quota exceeded', extensions: { code: 'QUOTA_EXCEEDED', metric: 'STORAGE_BYTES', limit: 524288000, resetsAt: null } }] },
    },
  });
  await page.goto('/app/drafts/d1');
  const photos = page.getByRole('region', { name: 'Photos' });
  await expect(photos.getByText('No photos for this draft.')).toBeVisible();
  await photos.getByLabel('Choose photos').setInputFiles({ name: 'front.png', mimeType: 'image/png', buffer: png });
  const item = photos.getByRole('listitem').filter({ hasText: 'front.png' });
  await expect(item).toContainText(/storage/i);
  await expect(item.getByRole('button', { name: 'Try again' })).toBeVisible();
});

test('draft editor: edit the fields; a bad price is refused in the browser, a field the server refuses is marked', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...answers,
      UpdateDraft: (v, n) =>
        n === 1
          ? { data: null, errors: [{ message: 'brand is too long for this marketplace', extensions: { code: 'BAD_USER_INPUT', field: 'input.brand' } }] }
          : { data: { updateDraft: { ...draft([]), ...(v.input as object) } } },
    },
  });
  await page.goto('/app/drafts/d1');
  await expect(page.getByLabel('Titre')).toHaveValue('Veste en jean Levi’s');
  await page.getByLabel('Titre').fill('Veste en jean Levi’s 501');
  await page.getByLabel('Description').fill('');
  await page.getByLabel('Prix (€)').fill('12,345');
  await page.getByLabel('Taille').fill('L');
  await page.getByLabel('Catégorie').fill('');
  await page.getByLabel('État').selectOption('GOOD');
  await page.getByLabel('Statut').selectOption('PUBLISHED');
  await page.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(page.getByText('Prix invalide : un nombre avec au plus deux décimales.')).toBeVisible();
  expect(rec.graphql.filter((g) => g.operationName === 'UpdateDraft')).toHaveLength(0);

  await page.getByLabel('Prix (€)').fill('29,9');
  await page.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(page.getByText('brand is too long for this marketplace')).toBeVisible();
  await expect(page.getByLabel('Marque')).toHaveAttribute('aria-invalid', 'true');
  await page.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(page.getByText('Modifications enregistrées.')).toBeVisible();
  expect(rec.graphql.filter((g) => g.operationName === 'UpdateDraft').map((g) => g.variables)).toEqual(
    Array(2).fill({
      id: 'd1',
      input: { title: 'Veste en jean Levi’s 501', description: null, priceCents: 2990, brand: 'Levi’s', size: 'L', category: null, condition: 'GOOD', status: 'PUBLISHED' },
    }),
  );
});

screens(
  [
    { path: '/app/drafts/d1', name: 'app-draft', signedIn: true, h1: /Modifier le brouillon/, ready: async (p) => void (await p.getByRole('img', { name: 'Photo 2' }).waitFor()) },
    { path: '/app/drafts/d1', name: 'app-draft-en', signedIn: true, h1: /Edit draft/, locale: 'en', ready: async (p) => void (await p.getByRole('img', { name: 'Photo 2' }).waitFor()) },
  ],
  answers,
);
