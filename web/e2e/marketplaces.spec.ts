import { expect, test } from '@playwright/test';
import { defaults, mockApi, type Answer } from './mock-api';
import { screens } from './screens';

// Marketplace accounts outside onboarding (/app/marketplaces) against the mocked API:
// the list, the connected-accounts gauge, connect, rename, disconnect, QUOTA_EXCEEDED.

const at = (d: number) => new Date(Date.UTC(2026, 10, d, 9)).toISOString();
const account = (over: Record<string, unknown> = {}) => ({
  id: 'm1',
  platform: 'VINTED',
  displayName: 'Ma boutique Vinted',
  status: 'CONNECTED',
  hasCredentials: true,
  createdAt: at(2),
  updatedAt: at(2),
  ...over,
});
const usage = (used: number, limit: number) => [
  { metric: 'SCANS', used: 3, limit: 20, resetsAt: '2026-12-01T00:00:00Z' },
  { metric: 'CONNECTED_ACCOUNTS', used, limit, resetsAt: null },
];

function world() {
  const w = {
    accounts: [account(), account({ id: 'm2', platform: 'EBAY', displayName: 'Ancien eBay', status: 'DISCONNECTED', hasCredentials: false, createdAt: at(1) }), account({ id: 'm3', platform: 'LEBONCOIN', displayName: 'Leboncoin perso', status: 'ERROR', createdAt: at(3) })],
    limit: 3,
  };
  const connected = () => w.accounts.filter((a) => a.status !== 'DISCONNECTED').length;
  const answers: Record<string, Answer> = {
    MarketplaceAccounts: () => ({ data: { marketplaceAccounts: w.accounts, usage: usage(connected(), w.limit) } }),
    ConnectMarketplace: (v) => {
      if (connected() >= w.limit) return { data: null, errors: [{ message: 'quota exceeded', extensions: { code: 'QUOTA_EXCEEDED', metric: 'CONNECTED_ACCOUNTS', limit: w.limit, resetsAt: null } }] };
      const input = v.input as { platform: string; displayName: string };
      const a = account({ id: `m${w.accounts.length + 1}`, platform: input.platform, displayName: input.displayName, createdAt: at(20) });
      w.accounts = [...w.accounts, a];
      return { data: { connectMarketplaceAccount: a } };
    },
    RenameMarketplaceAccount: (v) => {
      w.accounts = w.accounts.map((a) => (a.id === v.id ? { ...a, displayName: String(v.displayName) } : a));
      return { data: { renameMarketplaceAccount: w.accounts.find((a) => a.id === v.id) } };
    },
    DisconnectMarketplaceAccount: (v) => {
      w.accounts = w.accounts.map((a) => (a.id === v.id ? { ...a, status: 'DISCONNECTED', hasCredentials: false } : a));
      return { data: { disconnectMarketplaceAccount: w.accounts.find((a) => a.id === v.id) } };
    },
  };
  return { w, answers };
}

test('marketplace accounts: listed with the gauge; connect, rename, disconnect; past the limit QUOTA_EXCEEDED says what to do', async ({ page }) => {
  const { answers } = world();
  const rec = await mockApi(page, { signedIn: true, answers });
  await page.goto('/app');
  await page.getByRole('navigation', { name: 'Espace' }).getByRole('link', { name: 'Plateformes' }).click();
  await expect(page).toHaveURL(/\/app\/marketplaces$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Comptes de plateformes');

  const gauge = page.getByRole('region', { name: 'Comptes connectés' });
  await expect(gauge).toContainText('2 / 3');
  await expect(gauge.getByRole('progressbar')).toHaveAttribute('aria-valuenow', '67');
  const list = page.getByRole('region', { name: 'Vos comptes' }).getByRole('listitem');
  // Usable first, then refused, then disconnected.
  await expect(list).toHaveCount(3);
  await expect(list.nth(0)).toContainText('Ma boutique Vinted');
  await expect(list.nth(1)).toContainText('Identifiants refusés');
  await expect(list.nth(2)).toContainText('Déconnecté');
  await expect(list.nth(2)).toContainText('identifiants effacés');
  await expect(list.nth(2).getByRole('button')).toHaveCount(0);

  // Connect a third: the gauge fills up.
  const add = page.getByRole('region', { name: 'Connecter un compte' });
  await add.getByLabel('Plateforme', { exact: true }).selectOption('ETSY');
  await add.getByLabel('Nom du compte').fill('Boutique Etsy');
  await add.getByLabel('Identifiant sur la plateforme').fill('lea_etsy');
  await add.getByLabel('Mot de passe ou jeton d’accès').fill('s3cret');
  await add.getByRole('button', { name: 'Connecter le compte' }).click();
  await expect(page.getByText('Boutique Etsy est connecté.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'ConnectMarketplace')?.variables).toEqual({
    input: { platform: 'ETSY', displayName: 'Boutique Etsy', credentials: { login: 'lea_etsy', secret: 's3cret' } },
  });
  await expect(gauge).toContainText('3 / 3');
  await expect(gauge).toContainText('Limite de votre offre atteinte');
  await expect(add.getByLabel('Mot de passe ou jeton d’accès')).toHaveValue('');

  // A fourth is refused by the server: the shared error message, with its upgrade action.
  await add.getByLabel('Nom du compte').fill('Encore un');
  await add.getByLabel('Identifiant sur la plateforme').fill('x');
  await add.getByLabel('Mot de passe ou jeton d’accès').fill('y');
  await add.getByRole('button', { name: 'Connecter le compte' }).click();
  await expect(add.getByRole('alert')).toContainText(/comptes connectés/i);
  await expect(add.getByRole('alert').getByRole('link', { name: /offre/i })).toBeVisible();

  // Rename.
  await page.getByRole('button', { name: 'Renommer Ma boutique Vinted' }).click();
  const dialog = page.getByRole('dialog', { name: 'Renommer Ma boutique Vinted' });
  await dialog.getByLabel('Nouveau nom').fill('Vinted principal');
  await dialog.getByRole('button', { name: 'Renommer' }).click();
  await expect(page.getByText('Compte renommé.')).toBeVisible();
  await expect(list.filter({ hasText: 'Vinted principal' })).toHaveCount(1);
  expect(rec.graphql.find((g) => g.operationName === 'RenameMarketplaceAccount')?.variables).toEqual({ id: 'm1', displayName: 'Vinted principal' });

  // Disconnect, after a confirmation: room again.
  await page.getByRole('button', { name: 'Déconnecter Leboncoin perso' }).click();
  const confirm = page.getByRole('dialog', { name: 'Déconnecter Leboncoin perso' });
  await expect(confirm).toContainText('ses identifiants seront effacés');
  await confirm.getByRole('button', { name: 'Déconnecter' }).click();
  await expect(page.getByText('Leboncoin perso est déconnecté ; ses identifiants sont effacés.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'DisconnectMarketplaceAccount')?.variables).toEqual({ id: 'm3' });
  await expect(gauge).toContainText('2 / 3');
  await expect(gauge).not.toContainText('Limite de votre offre atteinte');
});

test('marketplace accounts: none yet, in English', async ({ page }) => {
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await mockApi(page, { signedIn: true, answers: { MarketplaceAccounts: { data: { marketplaceAccounts: [], usage: usage(0, 1) } } } });
  await page.goto('/app/marketplaces');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Marketplace accounts');
  await expect(page.getByText('No account yet.')).toBeVisible();
  await expect(page.getByRole('region', { name: 'Connected accounts' })).toContainText('0 / 1');
  await expect(page.getByRole('button', { name: 'Connect the account' })).toBeVisible();
});

const shots = world().answers;
screens(
  [
    { path: '/app/marketplaces', name: 'app-marketplaces', signedIn: true, h1: /Comptes de plateformes/, ready: async (p) => void (await p.getByRole('region', { name: 'Vos comptes' }).waitFor()) },
    { path: '/app/marketplaces', name: 'app-marketplaces-en', signedIn: true, h1: /Marketplace accounts/, locale: 'en', ready: async (p) => void (await p.getByRole('region', { name: 'Your accounts' }).waitFor()) },
  ],
  { ...defaults, ...shots },
);
