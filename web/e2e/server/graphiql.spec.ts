import { expect, test, type Page, type WebSocket } from '@playwright/test';
import { cspErrors, freshEmail, graphql, PASSWORD, register, signIn } from './helpers';

// The API explorer at GET /graphql (GraphiQL) works offline: the browser may reach the
// server and nothing else (every other host is refused), and every script, stylesheet
// and font the page asks for comes from the server. Signed out, the explorer runs
// anonymous queries and says how to paste a token; signed in to the web app, its
// Authorization header is filled from the session, for queries and for the
// subscription's connection_init alike.

test.use({ baseURL: process.env.PLINTH_E2E_URL });

const EXECUTE = 'Execute query (Ctrl-Enter)';

/** Refuses every request to another host and records what the page asked for. */
async function serverOnly(page: Page): Promise<{ url: string; type: string }[]> {
  const origin = new URL(process.env.PLINTH_E2E_URL!).origin;
  const seen: { url: string; type: string }[] = [];
  await page.route(
    (url) => url.origin !== origin && url.protocol !== 'data:',
    (route) => route.abort('blockedbyclient'),
  );
  page.on('request', (r) => seen.push({ url: r.url(), type: r.resourceType() }));
  return seen;
}

/** The explorer's response pane. */
function response(page: Page) {
  return page.locator('.result-window');
}

/** Replaces the query editor's text (typed as one input, so no bracket is auto-closed). */
async function setQuery(page: Page, text: string) {
  await page.locator('.graphiql-query-editor .CodeMirror').first().click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(text);
}

test('the explorer loads only from the server, renders, and says how to paste a token', async ({ page }) => {
  const seen = await serverOnly(page);
  const csp = cspErrors(page);
  const introspection = page.waitForResponse((r) => r.url().endsWith('/graphql') && r.request().method() === 'POST' && (r.request().postData() ?? '').includes('__schema'));
  await page.goto('/graphql');
  await expect(page.getByRole('button', { name: EXECUTE })).toBeVisible();
  await expect(page.getByText('Not signed in', { exact: false })).toBeVisible();
  // The explorer's own introspection query (15 deep) is answered whole: docs and completion work.
  const schema = (await (await introspection).json()) as { errors?: unknown; data?: { __schema?: { queryType?: { name: string } } } };
  expect(schema.errors).toBeUndefined();
  expect(schema.data?.__schema?.queryType?.name).toBe('Query');

  const origin = new URL(process.env.PLINTH_E2E_URL!).origin;
  const assets = seen.filter((r) => ['document', 'script', 'stylesheet', 'font'].includes(r.type));
  expect(assets.filter((r) => r.type === 'script').length).toBeGreaterThanOrEqual(4);
  expect(assets.filter((r) => r.type === 'stylesheet').length).toBeGreaterThanOrEqual(1);
  expect(assets.filter((r) => !r.url.startsWith('data:') && new URL(r.url).origin !== origin)).toEqual([]);
  expect(seen.filter((r) => !r.url.startsWith('data:') && new URL(r.url).origin !== origin)).toEqual([]);

  // Anonymous: `me` is null, answered by the server (the schema loaded too: docs).
  await page.getByRole('button', { name: EXECUTE }).click();
  await expect(response(page)).toContainText('"me": null');
  expect(csp).toEqual([]);
});

test('signed in to the web app, the explorer carries the session for queries and subscriptions', async ({ page, request }) => {
  const email = freshEmail('graphiql');
  await register(request, email);
  await signIn(page, email);
  const seen = await serverOnly(page);
  const csp = cspErrors(page);
  await page.goto('/graphql');
  await expect(page.getByText('Signed in', { exact: false })).toBeVisible();
  await page.getByRole('button', { name: EXECUTE }).click();
  await expect(response(page)).toContainText(email);

  // A subscription: the same header goes in connection_init, then a job is seen live.
  await setQuery(page, 'subscription Live { jobUpdated { id status } }');
  const sockets: WebSocket[] = [];
  const sent: string[] = [];
  page.on('websocket', (ws) => {
    sockets.push(ws);
    ws.on('framesent', (f) => sent.push(String(f.payload)));
  });
  // GraphiQL reads the operation's name from the editor a moment after an edit: until
  // then a click sends the old one (refused), so click until the socket opens.
  await expect(async () => {
    if (sockets.length === 0) await page.getByRole('button', { name: EXECUTE }).click();
    await expect.poll(() => sockets.length, { timeout: 2_000 }).toBeGreaterThan(0);
  }).toPass({ timeout: 20_000 });
  expect(new URL(sockets[0]!.url()).pathname).toBe('/graphql/ws');
  await expect.poll(() => sent.some((f) => f.includes('"subscribe"'))).toBe(true);
  const init = JSON.parse(sent.find((f) => f.includes('"connection_init"'))!) as { payload: Record<string, string> };
  expect(init.payload.Authorization ?? init.payload.authorization).toMatch(/^Bearer \S+$/);
  const login = await graphql(request, null, 'mutation($i: LoginInput!) { login(input: $i) { accessToken } }', {
    i: { email, password: PASSWORD },
  });
  const token = (login.login as { accessToken: string }).accessToken;
  const job = await graphql(request, token, 'mutation { createJob(input: { kind: SCAN }) { id } }');
  const id = (job.createJob as { id: string }).id;
  await expect(response(page)).toContainText(id, { timeout: 20_000 });
  const origin = new URL(process.env.PLINTH_E2E_URL!).origin;
  expect(seen.filter((r) => !r.url.startsWith('data:') && new URL(r.url).origin !== origin)).toEqual([]);
  expect(csp).toEqual([]);
});
