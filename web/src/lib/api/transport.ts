// The one place every GraphQL request over HTTP passes: it attaches the access token,
// refreshes it once when the server answers UNAUTHENTICATED (then signs out if that does
// not help), and waits out RATE_LIMITED answers. urql uses it as its `fetch`; the public
// pricing page calls `postGraphQL` directly so it ships without urql.
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
import { fromHttp, fromWireError, type ApiError, type WireError } from './errors';
import type { Session } from './session';

export interface TransportOptions {
  fetch?: typeof fetch;
  /** Sleep, for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Longest RATE_LIMITED wait honoured automatically, in seconds. */
  maxWaitSecs?: number;
  /** How many RATE_LIMITED answers are waited out before giving up. */
  maxRateLimitRetries?: number;
  /** Told when a request waits (the UI shows "retrying in N s"). */
  onWait?: (seconds: number) => void;
}

interface WireBody {
  data?: unknown;
  errors?: WireError[];
}

function codes(body: WireBody | null): string[] {
  return (body?.errors ?? []).map((e) => String(e.extensions?.code ?? ''));
}

function parse(text: string): WireBody | null {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as WireBody) : null;
  } catch {
    return null;
  }
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A `fetch` for GraphQL POSTs bound to a session. It always resolves with a Response
 * whose body is the final answer (after at most one refresh and a few rate-limit waits),
 * so urql reads it as usual.
 */
export function createAuthFetch(session: Session, opts: TransportOptions = {}): typeof fetch {
  const doFetch = opts.fetch ?? ((...a: Parameters<typeof fetch>) => globalThis.fetch(...a));
  const sleep = opts.sleep ?? defaultSleep;
  const maxWait = opts.maxWaitSecs ?? 30;
  const maxRetries = opts.maxRateLimitRetries ?? 2;

  async function send(input: RequestInfo | URL, init: RequestInit | undefined, token: string | null) {
    const headers = new Headers(init?.headers);
    if (token) headers.set('Authorization', `Bearer ${token}`);
    else headers.delete('Authorization');
    if (!headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
    if (!headers.has('Accept')) headers.set('Accept', 'application/graphql-response+json, application/json');
    const res = await doFetch(input, { ...init, headers, credentials: 'same-origin' });
    const text = await res.text();
    return { res, text, body: parse(text) };
  }

  return async (input, init) => {
    let token = await session.freshToken();
    let attempt = await send(input, init, token);
    let refreshed = false;
    let waits = 0;
    for (;;) {
      const c = codes(attempt.body);
      if (c.includes('UNAUTHENTICATED')) {
        if (refreshed) {
          // A fresh token was refused too: the session is over.
          session.signOut('expired');
          break;
        }
        refreshed = true;
        if (!(await session.refresh())) break;
        token = session.accessToken;
        attempt = await send(input, init, token);
        continue;
      }
      if (c.includes('RATE_LIMITED') || attempt.res.status === 429) {
        const err = attempt.body?.errors?.find((e) => e.extensions?.code === 'RATE_LIMITED');
        const secs = Number(err?.extensions?.retryAfter ?? attempt.res.headers.get('Retry-After') ?? 1);
        if (waits >= maxRetries || !(secs > 0) || secs > maxWait) break;
        waits++;
        opts.onWait?.(secs);
        await sleep(secs * 1000);
        attempt = await send(input, init, await session.freshToken());
        continue;
      }
      break;
    }
    return new Response(attempt.text, { status: attempt.res.status, statusText: attempt.res.statusText, headers: attempt.res.headers });
  };
}

/** The outcome of one operation: data, or the first error (mapped). */
export type Result<T> = { data: T; error?: undefined } | { data?: undefined; error: ApiError };

/**
 * Runs one operation without urql or a GraphQL printer (small public pages), from a
 * string document generated into $lib/gql/public.ts. The answer's first error wins; a
 * response without data and without errors is an UNKNOWN error.
 */
export async function postGraphQL<T, V extends Record<string, unknown>>(
  doFetch: typeof fetch,
  doc: string | (String & DocumentTypeDecoration<T, V>),
  variables?: V,
  url = '/graphql',
): Promise<Result<T>> {
  let res: Response;
  try {
    res = await doFetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' },
      body: JSON.stringify({ query: String(doc), variables: variables ?? {} }),
    });
  } catch (e) {
    return { error: fromHttp(undefined, String(e)) };
  }
  const body = parse(await res.text());
  const first = body?.errors?.[0];
  if (first) return { error: fromWireError(first, res.status) };
  if (body?.data == null) return { error: fromHttp(res.status) };
  return { data: body.data as T };
}
