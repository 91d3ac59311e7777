import { describe, expect, it, vi } from 'vitest';
import { Session } from './session';
import { createAuthFetch, postGraphQL } from './transport';

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

/** A fake server: records every request and answers with the handler. */
function fakeServer(handler: Handler) {
  const calls: { url: string; auth: string | null; csrf: string | null; body: string }[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input);
    const headers = new Headers(init.headers);
    calls.push({ url, auth: headers.get('Authorization'), csrf: headers.get('X-Plinth-CSRF'), body: String(init.body ?? '') });
    return handler(url, init);
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

const auth = (token: string, inSecs = 900) =>
  json({
    accessToken: token,
    expiresAt: new Date(Date.now() + inSecs * 1000).toISOString(),
    user: { id: 'u1', email: 'a@example.com', role: 'USER', plan: 'FREE' },
  });

const unauthenticated = () => json({ data: null, errors: [{ message: 'token expired', extensions: { code: 'UNAUTHENTICATED' } }] });
const ok = (data: unknown) => json({ data });
const gql = (f: typeof fetch) => f('/graphql', { method: 'POST', body: JSON.stringify({ query: '{ me { id } }' }) });

describe('the cookie endpoints', () => {
  it('sign in with the CSRF header and keep the token in memory', async () => {
    const server = fakeServer(() => auth('t1'));
    const session = new Session({ fetch: server.fetch });
    const user = await session.login('a@example.com', 'secret-password');
    expect(user.email).toBe('a@example.com');
    expect(session.accessToken).toBe('t1');
    expect(session.state.status).toBe('signed-in');
    expect(server.calls[0]).toMatchObject({ url: '/auth/login', csrf: '1' });
    expect(JSON.parse(server.calls[0]!.body)).toEqual({ email: 'a@example.com', password: 'secret-password' });
  });

  it('report a refused sign-in as an ApiError', async () => {
    const server = fakeServer(() => json({ error: { code: 'UNAUTHENTICATED', message: 'wrong e-mail or password' } }, 401));
    const session = new Session({ fetch: server.fetch });
    await expect(session.login('a@example.com', 'nope')).rejects.toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    expect(session.accessToken).toBeNull();
  });

  it('read a rate-limited sign-in with its Retry-After', async () => {
    const server = fakeServer(() => json({ error: { code: 'RATE_LIMITED', message: 'slow down' } }, 429, { 'Retry-After': '30' }));
    const session = new Session({ fetch: server.fetch });
    await expect(session.login('a@example.com', 'x')).rejects.toMatchObject({ error: { code: 'RATE_LIMITED', retryAfter: 30 } });
  });

  it('share one refresh between concurrent callers (a refresh token is single use)', async () => {
    let n = 0;
    const server = fakeServer(async (url) => {
      expect(url).toBe('/auth/refresh');
      await new Promise((r) => setTimeout(r, 5));
      return auth(`t${++n}`);
    });
    const session = new Session({ fetch: server.fetch });
    const [a, b, c] = await Promise.all([session.refresh(), session.refresh(), session.restore()]);
    expect([a, b, c]).toEqual([true, true, true]);
    expect(server.calls).toHaveLength(1);
    expect(session.accessToken).toBe('t1');
  });

  it('sign out when the refresh cookie is refused, but not on a network failure', async () => {
    const refused = new Session({ fetch: fakeServer(() => new Response(null, { status: 401 })).fetch });
    expect(await refused.refresh()).toBe(false);
    // Nobody was signed in in this tab: signed out, but nothing "expired".
    expect(refused.state).toEqual({ status: 'signed-out', user: null });

    let n = 0;
    const lapsed = new Session({ fetch: fakeServer(() => (++n === 1 ? auth('t1') : new Response(null, { status: 401 }))).fetch });
    await lapsed.login('a@example.com', 'x');
    expect(await lapsed.refresh()).toBe(false);
    expect(lapsed.state).toMatchObject({ status: 'signed-out', reason: 'expired' });

    const offline = new Session({
      fetch: (() => Promise.reject(new TypeError('Failed to fetch'))) as unknown as typeof fetch,
    });
    expect(await offline.refresh()).toBe(false);
    expect(offline.state.status).toBe('unknown');
  });

  it('log out on the server and locally even if the server fails', async () => {
    const server = fakeServer((url) => (url === '/auth/logout' ? new Response(null, { status: 500 }) : auth('t1')));
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    await session.logout();
    expect(server.calls.map((c) => c.url)).toEqual(['/auth/login', '/auth/logout']);
    expect(session.accessToken).toBeNull();
    expect(session.state).toMatchObject({ status: 'signed-out', reason: 'logout' });
  });
});

describe('the authenticated fetch', () => {
  it('attaches the access token', async () => {
    const server = fakeServer((url) => (url === '/auth/login' ? auth('t1') : ok({ me: { id: 'u1' } })));
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    const res = await gql(createAuthFetch(session, { fetch: server.fetch }));
    expect(await res.json()).toEqual({ data: { me: { id: 'u1' } } });
    expect(server.calls[1]).toMatchObject({ url: '/graphql', auth: 'Bearer t1' });
  });

  it('sends anonymous requests without a token and without refreshing', async () => {
    const server = fakeServer(() => ok({ plans: [] }));
    const session = new Session({ fetch: server.fetch });
    await gql(createAuthFetch(session, { fetch: server.fetch }));
    expect(server.calls).toHaveLength(1);
    expect(server.calls[0]!.auth).toBeNull();
  });

  it('on UNAUTHENTICATED refreshes once and retries with the new token', async () => {
    let graphqlCalls = 0;
    const server = fakeServer((url) => {
      if (url === '/auth/login') return auth('old');
      if (url === '/auth/refresh') return auth('new');
      return ++graphqlCalls === 1 ? unauthenticated() : ok({ me: { id: 'u1' } });
    });
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    const res = await gql(createAuthFetch(session, { fetch: server.fetch }));
    expect(await res.json()).toEqual({ data: { me: { id: 'u1' } } });
    expect(server.calls.map((c) => [c.url, c.auth])).toEqual([
      ['/auth/login', null],
      ['/graphql', 'Bearer old'],
      ['/auth/refresh', null],
      ['/graphql', 'Bearer new'],
    ]);
    expect(session.state.status).toBe('signed-in');
  });

  it('signs out when the retried request is refused again (no second refresh)', async () => {
    const server = fakeServer((url) => {
      if (url === '/auth/login') return auth('old');
      if (url === '/auth/refresh') return auth('new');
      return unauthenticated();
    });
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    const res = await gql(createAuthFetch(session, { fetch: server.fetch }));
    const body = await res.json();
    expect(body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(server.calls.filter((c) => c.url === '/auth/refresh')).toHaveLength(1);
    expect(server.calls.filter((c) => c.url === '/graphql')).toHaveLength(2);
    expect(session.state).toMatchObject({ status: 'signed-out', reason: 'expired' });
    expect(session.accessToken).toBeNull();
  });

  it('signs out when the refresh itself is refused, without retrying', async () => {
    const server = fakeServer((url) => {
      if (url === '/auth/login') return auth('old');
      if (url === '/auth/refresh') return new Response(null, { status: 401 });
      return unauthenticated();
    });
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    await gql(createAuthFetch(session, { fetch: server.fetch }));
    expect(server.calls.filter((c) => c.url === '/graphql')).toHaveLength(1);
    expect(session.state.status).toBe('signed-out');
  });

  it('refreshes an expiring token before sending, so the request never fails for it', async () => {
    const server = fakeServer((url) => {
      if (url === '/auth/login') return auth('short', 10);
      if (url === '/auth/refresh') return auth('fresh');
      return ok({ me: null });
    });
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    await gql(createAuthFetch(session, { fetch: server.fetch }));
    expect(server.calls.map((c) => c.url)).toEqual(['/auth/login', '/auth/refresh', '/graphql']);
    expect(server.calls[2]!.auth).toBe('Bearer fresh');
  });

  it('concurrent requests that hit UNAUTHENTICATED share one refresh', async () => {
    const seen = new Map<string, number>();
    const server = fakeServer(async (url, init) => {
      if (url === '/auth/login') return auth('old');
      if (url === '/auth/refresh') {
        await new Promise((r) => setTimeout(r, 5));
        return auth('new');
      }
      const token = new Headers(init.headers).get('Authorization');
      seen.set(String(token), (seen.get(String(token)) ?? 0) + 1);
      return token === 'Bearer old' ? unauthenticated() : ok({ me: { id: 'u1' } });
    });
    const session = new Session({ fetch: server.fetch });
    await session.login('a@example.com', 'x');
    const f = createAuthFetch(session, { fetch: server.fetch });
    await Promise.all([gql(f), gql(f), gql(f)]);
    expect(server.calls.filter((c) => c.url === '/auth/refresh')).toHaveLength(1);
    expect(seen.get('Bearer new')).toBe(3);
  });

  it('waits out RATE_LIMITED for retryAfter seconds, then retries', async () => {
    let n = 0;
    const server = fakeServer(() =>
      ++n === 1 ? json({ data: null, errors: [{ message: 'slow', extensions: { code: 'RATE_LIMITED', retryAfter: 3 } }] }) : ok({ me: null }),
    );
    const sleep = vi.fn(async () => {});
    const onWait = vi.fn();
    const session = new Session({ fetch: server.fetch });
    const res = await gql(createAuthFetch(session, { fetch: server.fetch, sleep, onWait }));
    expect(await res.json()).toEqual({ data: { me: null } });
    expect(sleep).toHaveBeenCalledWith(3000);
    expect(onWait).toHaveBeenCalledWith(3);
    expect(server.calls).toHaveLength(2);
  });

  it('gives up on RATE_LIMITED after the allowed retries or when the wait is too long', async () => {
    const limited = (retryAfter: number) => () =>
      json({ data: null, errors: [{ message: 'slow', extensions: { code: 'RATE_LIMITED', retryAfter } }] });
    const sleep = vi.fn(async () => {});
    const a = fakeServer(limited(1));
    const resA = await gql(createAuthFetch(new Session({ fetch: a.fetch }), { fetch: a.fetch, sleep, maxRateLimitRetries: 2 }));
    expect(a.calls).toHaveLength(3);
    expect((await resA.json()).errors[0].extensions.code).toBe('RATE_LIMITED');

    const b = fakeServer(limited(600));
    await gql(createAuthFetch(new Session({ fetch: b.fetch }), { fetch: b.fetch, sleep }));
    expect(b.calls).toHaveLength(1);
  });
});

describe('postGraphQL', () => {
  it('returns data, or the first error mapped', async () => {
    const good = fakeServer(() => ok({ plans: [] }));
    expect(await postGraphQL(good.fetch, 'query Plans { plans { code } }')).toEqual({ data: { plans: [] } });
    expect(JSON.parse(good.calls[0]!.body)).toEqual({ query: 'query Plans { plans { code } }', variables: {} });

    const bad = fakeServer(() => json({ data: null, errors: [{ message: 'x', extensions: { code: 'INTERNAL', requestId: 'r1' } }] }));
    expect(await postGraphQL(bad.fetch, '{ plans { code } }')).toEqual({
      error: { code: 'INTERNAL', serverMessage: 'x', requestId: 'r1' },
    });

    const down = (() => Promise.reject(new TypeError('Failed to fetch'))) as unknown as typeof fetch;
    expect((await postGraphQL(down, '{ plans { code } }')).error?.code).toBe('NETWORK');
  });
});
