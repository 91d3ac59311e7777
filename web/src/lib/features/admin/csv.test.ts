import { describe, expect, it } from 'vitest';
import { Session } from '$lib/api/session';
import { fetchCsv } from './csv';

function signedIn(refreshes: string[]) {
  let n = 0;
  const fetchAuth: typeof fetch = async () => {
    const token = refreshes[n++] ?? null;
    if (!token) return new Response('', { status: 401 });
    return new Response(JSON.stringify({ accessToken: token, expiresAt: new Date(Date.now() + 600_000).toISOString(), user: { id: 'a', email: 'a@x', role: 'ADMIN', plan: 'FREE' } }), { status: 200 });
  };
  return new Session({ fetch: fetchAuth });
}

describe('fetchCsv', () => {
  it('sends the bearer token and returns the bytes', async () => {
    const s = signedIn(['t1']);
    await s.restore();
    const seen: (string | null)[] = [];
    const r = await fetchCsv(s, '/admin/metrics/mrr.csv?from=a', async (_u, init) => {
      seen.push(new Headers(init?.headers).get('Authorization'));
      return new Response('start,mrr\n', { status: 200, headers: { 'Content-Type': 'text/csv' } });
    });
    expect(seen).toEqual(['Bearer t1']);
    expect('blob' in r && (await r.blob.text())).toBe('start,mrr\n');
  });

  it('refreshes once on 401 and retries with the new token', async () => {
    const s = signedIn(['t1', 't2']);
    await s.restore();
    const seen: (string | null)[] = [];
    const r = await fetchCsv(s, '/x.csv', async (_u, init) => {
      const auth = new Headers(init?.headers).get('Authorization');
      seen.push(auth);
      return auth === 'Bearer t2' ? new Response('ok', { status: 200 }) : new Response('', { status: 401 });
    });
    expect(seen).toEqual(['Bearer t1', 'Bearer t2']);
    expect('blob' in r).toBe(true);
  });

  it('maps a refusal: the JSON error body, else the status', async () => {
    const s = signedIn(['t1']);
    await s.restore();
    const forbidden = await fetchCsv(s, '/x.csv', async () => new Response(JSON.stringify({ error: { code: 'FORBIDDEN', message: 'admins only' } }), { status: 403 }));
    expect('error' in forbidden && forbidden.error.code).toBe('FORBIDDEN');
    const missing = await fetchCsv(s, '/x.csv', async () => new Response('not found', { status: 404 }));
    expect('error' in missing && missing.error.code).toBe('NOT_FOUND');
  });
});
