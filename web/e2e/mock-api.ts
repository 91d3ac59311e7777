// A stand-in for Plinth's API inside the browser: the cookie endpoints, POST /graphql by
// operation name, and the graphql-transport-ws socket. Used until these tests run against
// the real server (the lead wires `vite preview` → `cargo run`).
import type { Page, WebSocketRoute } from '@playwright/test';
import { connection } from './support-fixtures';

export const user = { id: 'u1', email: 'lea@example.com', role: 'USER', plan: 'FREE' };

export interface Recorded {
  auth: { path: string; csrf: string | null }[];
  graphql: { operationName: string; authorization: string | null; variables: Record<string, unknown> }[];
  wsInit: unknown[];
  /** Open subscriptions on the socket: id → operation name. */
  subs: Map<string, string>;
  /** Every `subscribe` message received, in order (operation names; resubscriptions count). */
  subscribed: string[];
  socket?: WebSocketRoute;
}

export type Answer = { data?: unknown; errors?: unknown[] } | ((variables: Record<string, unknown>, n: number) => { data?: unknown; errors?: unknown[] });

const now = new Date('2026-11-20T10:00:00Z').toISOString();
const job = (over: Record<string, unknown> = {}) => ({
  id: 'j1',
  kind: 'SCAN',
  status: 'RUNNING',
  progress: 0.25,
  message: 'reading photos',
  draftId: null,
  error: null,
  attempts: 1,
  maxAttempts: 3,
  cancelRequested: false,
  createdAt: now,
  updatedAt: now,
  finishedAt: null,
  ...over,
});
export const sampleJob = job;

/** The dashboard of an account that has done nothing yet. */
export const emptyDashboard = {
  drafts: { draft: 0, ready: 0, published: 0, archived: 0, total: 0 },
  jobs: { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 },
  photoCount: 0,
  storageBytes: 0,
  connectedAccounts: 0,
  recentActivity: [],
};

/** The billing page's answer for a plan in a state (the catalog is the same for all). */
export const billing = (plan: string, state: string, over: Record<string, unknown> = {}) => ({
  data: {
    billing: { plan, state, subscriptionStatus: null, interval: null, currentPeriodEnd: null, trialEnd: null, graceUntil: null, cancelAtPeriodEnd: false, trialAvailable: true, ...over },
    plans: [
      { code: 'FREE', name: 'Free', monthlyPriceCents: 0, yearlyPriceCents: 0, currency: 'EUR', trialDays: 0 },
      { code: 'STARTER', name: 'Starter', monthlyPriceCents: 1900, yearlyPriceCents: 19000, currency: 'EUR', trialDays: 14 },
      { code: 'PRO', name: 'Pro', monthlyPriceCents: 4900, yearlyPriceCents: 49000, currency: 'EUR', trialDays: 14 },
      { code: 'SCALE', name: 'Scale', monthlyPriceCents: 14900, yearlyPriceCents: 149000, currency: 'EUR', trialDays: 14 },
    ],
  },
});

const invoice = (n: number, over: Record<string, unknown> = {}) => ({
  id: `in${n}`,
  number: `PL-000${n}`,
  status: 'paid',
  currency: 'eur',
  totalCents: 5880,
  taxCents: 980,
  amountDueCents: 0,
  hostedInvoiceUrl: `https://invoice.stripe.com/i/acct_test/in${n}`,
  invoicePdf: `https://pay.stripe.com/invoice/acct_test/in${n}/pdf`,
  periodStart: '2026-10-20T00:00:00Z',
  periodEnd: '2026-11-20T00:00:00Z',
  createdAt: now,
  ...over,
});

/** 53 activity entries, newest first: the page asks for 50, then the rest. */
export const activityEntries = Array.from({ length: 53 }, (_, i) => ({
  id: `ac${i}`,
  action: ['draft.create', 'job.create', 'draft.update', 'session.login'][i % 4],
  subjectType: ['draft', 'job', 'draft', null][i % 4],
  subjectId: i % 4 === 3 ? null : `s${i}`,
  createdAt: new Date(Date.parse(now) - i * 3_600_000).toISOString(),
}));

export const defaults: Record<string, Answer> = {
  BillingState: { data: { billing: { plan: 'FREE', state: 'FREE', graceUntil: null } } },
  Notifications: { data: { notifications: [] } },
  Dashboard: {
    data: {
      dashboard: {
        drafts: { draft: 3, ready: 2, published: 5, archived: 1, total: 11 },
        jobs: { queued: 1, running: 1, succeeded: 9, failed: 0, canceled: 0 },
        photoCount: 42,
        storageBytes: 73400320,
        connectedAccounts: 1,
        recentActivity: [
          { id: 'a1', action: 'draft.create', subjectType: 'draft', createdAt: now },
          { id: 'a2', action: 'job.create', subjectType: 'job', createdAt: now },
        ],
      },
    },
  },
  Billing: billing('PRO', 'ACTIVE', { subscriptionStatus: 'active', interval: 'MONTH', currentPeriodEnd: '2026-12-20T00:00:00Z' }),
  Invoices: { data: { invoices: connection([invoice(2, { status: 'open', amountDueCents: 5880, createdAt: '2026-11-20T10:00:00Z' }), invoice(1, { hostedInvoiceUrl: null, periodStart: null, periodEnd: null })]) } },
  Activity: (v) => {
    const from = v.after ? Number(String(v.after).slice(1)) + 1 : 0;
    const nodes = activityEntries.slice(from, from + Number(v.first ?? 50));
    return { data: { activity: { edges: nodes.map((node, i) => ({ cursor: `c${from + i}`, node })), pageInfo: { hasNextPage: from + nodes.length < activityEntries.length, endCursor: `c${from + nodes.length - 1}` } } } };
  },
  ApiTokens: {
    data: {
      apiTokens: [
        { id: 't1', name: 'Export comptable', scopes: ['drafts:read', 'jobs:read'], createdAt: now, lastUsedAt: now, expiresAt: '2027-02-18T10:00:00Z', revokedAt: null },
        { id: 't2', name: 'Ancien script', scopes: ['drafts:write'], createdAt: '2026-09-01T10:00:00Z', lastUsedAt: null, expiresAt: '2026-12-01T10:00:00Z', revokedAt: '2026-10-01T10:00:00Z' },
      ],
    },
  },
  Jobs: { data: { jobs: { edges: [{ cursor: 'c1', node: job() }], pageInfo: { hasNextPage: false, endCursor: 'c1' } } } },
  Usage: {
    data: {
      usage: [
        { metric: 'SCANS', used: 20, limit: 20, resetsAt: '2026-12-01T00:00:00Z' },
        { metric: 'PREPARATIONS', used: 8, limit: 10, resetsAt: '2026-12-01T00:00:00Z' },
        { metric: 'CONNECTED_ACCOUNTS', used: 0, limit: 1, resetsAt: null },
        { metric: 'STORAGE_BYTES', used: 73400320, limit: 524288000, resetsAt: null },
      ],
    },
  },
  Drafts: {
    data: {
      drafts: {
        edges: [
          { cursor: 'd1', node: { id: 'd1', title: 'Veste en jean Levi’s', description: '', priceCents: 3500, currency: 'EUR', brand: 'Levi’s', size: 'M', condition: 'VERY_GOOD', category: null, status: 'READY', createdAt: now, updatedAt: now } },
          { cursor: 'd2', node: { id: 'd2', title: 'Robe d’été fleurie', description: '', priceCents: null, currency: 'EUR', brand: null, size: null, condition: null, category: null, status: 'DRAFT', createdAt: now, updatedAt: now } },
        ],
        pageInfo: { hasNextPage: false, endCursor: 'd2' },
      },
    },
  },
};

export async function mockApi(
  page: Page,
  opts: { signedIn?: boolean; answers?: Record<string, Answer>; user?: Partial<typeof user> } = {},
) {
  const me = { ...user, ...opts.user };
  const rec: Recorded = { auth: [], graphql: [], wsInit: [], subs: new Map(), subscribed: [] };
  let signedIn = opts.signedIn ?? false;
  let tokenN = 0;
  const answers = { ...defaults, ...opts.answers };
  const counts = new Map<string, number>();
  const authAnswer = () => ({
    accessToken: `token-${++tokenN}`,
    expiresAt: new Date(Date.now() + 15 * 60_000).toISOString(),
    user: me,
  });

  await page.route('**/auth/*', async (route) => {
    const path = new URL(route.request().url()).pathname;
    rec.auth.push({ path, csrf: route.request().headers()['x-plinth-csrf'] ?? null });
    if (path === '/auth/login' || path === '/auth/register') {
      signedIn = true;
      return route.fulfill({ json: authAnswer() });
    }
    if (path === '/auth/refresh') {
      return signedIn ? route.fulfill({ json: authAnswer() }) : route.fulfill({ status: 401, json: { error: { code: 'UNAUTHENTICATED', message: 'no session' } } });
    }
    if (path === '/auth/logout') {
      signedIn = false;
      return route.fulfill({ status: 204 });
    }
    return route.fulfill({ status: 404 });
  });

  await page.route('**/graphql', async (route) => {
    const body = route.request().postDataJSON() as { query: string; variables?: Record<string, unknown>; operationName?: string };
    const name = body.operationName ?? body.query.match(/(?:query|mutation)\s+(\w+)/)?.[1] ?? '';
    const n = (counts.get(name) ?? 0) + 1;
    counts.set(name, n);
    rec.graphql.push({ operationName: name, authorization: route.request().headers()['authorization'] ?? null, variables: body.variables ?? {} });
    const a = answers[name];
    const result = typeof a === 'function' ? a(body.variables ?? {}, n) : a;
    return route.fulfill({ json: result ?? { data: null, errors: [{ message: `no mock for ${name}`, extensions: { code: 'INTERNAL', requestId: 'mock' } }] } });
  });

  await page.routeWebSocket('**/graphql/ws', (ws) => {
    rec.socket = ws;
    ws.onMessage((raw) => {
      const msg = JSON.parse(String(raw)) as { type: string; id?: string; payload?: { query?: string } };
      if (msg.type === 'connection_init') {
        rec.wsInit.push(msg.payload);
        ws.send(JSON.stringify({ type: 'connection_ack' }));
      } else if (msg.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (msg.type === 'subscribe' && msg.id) {
        const op = msg.payload?.query?.match(/subscription\s+(\w+)/)?.[1] ?? '';
        rec.subs.set(msg.id, op);
        rec.subscribed.push(op);
      } else if (msg.type === 'complete' && msg.id) {
        rec.subs.delete(msg.id);
      }
    });
  });

  return rec;
}

/** Sends a `next` to every subscription of `operationName` open on the socket. */
export function pushNext(rec: Recorded, operationName: string, data: unknown) {
  for (const [id, op] of rec.subs) if (op === operationName) rec.socket?.send(JSON.stringify({ id, type: 'next', payload: { data } }));
}
