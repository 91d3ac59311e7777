// The signed-in session. The access token lives in this object's memory only; the
// refresh token is an HttpOnly cookie that JavaScript never sees, exchanged through the
// server's cookie endpoints (see web/README.md, "Cookie endpoints"):
//   POST /auth/login     {email, password}          → 200 {accessToken, expiresAt, user}
//   POST /auth/register  {email, password, locale?} → 200 same shape
//   POST /auth/refresh   (cookie)                   → 200 same shape, or 401
//   POST /auth/logout    (cookie)                   → 204
// Every call carries `X-Plinth-CSRF: 1` and is same-origin.
import { fromHttp, fromWireError, type ApiError, type WireError } from './errors';
import type { PlanCode, UserRole } from '$lib/gql/graphql';

/** The user the server answers with. */
export interface SessionUser {
  id: string;
  email: string;
  role: UserRole;
  plan: PlanCode;
}

/** The answer of /auth/login, /auth/register and /auth/refresh. */
export interface AuthAnswer {
  accessToken: string;
  expiresAt: string;
  user: SessionUser;
}

export type SessionStatus = 'unknown' | 'signed-in' | 'signed-out';

/** Why a session ended, so the sign-in page can say it. */
export type SignOutReason = 'logout' | 'expired';

export interface SessionState {
  status: SessionStatus;
  user: SessionUser | null;
  reason?: SignOutReason;
}

export interface SessionOptions {
  fetch?: typeof fetch;
  /** Prefix of the cookie endpoints ('' = same origin). */
  baseUrl?: string;
  /** Clock, for tests. */
  now?: () => number;
}

/** Refresh this long before expiry, so a request never leaves with a dying token. */
const EARLY_REFRESH_MS = 30_000;

export const CSRF_HEADER = 'X-Plinth-CSRF';

/** A failed call to a cookie endpoint. */
export class AuthRequestError extends Error {
  constructor(readonly error: ApiError) {
    super(error.serverMessage || error.code);
  }
}

export class Session {
  #token: string | null = null;
  #expiresAt = 0;
  #state: SessionState = { status: 'unknown', user: null };
  #refreshing: Promise<boolean> | null = null;
  #listeners = new Set<(s: SessionState) => void>();
  readonly #fetch: typeof fetch;
  readonly #base: string;
  readonly #now: () => number;

  constructor(opts: SessionOptions = {}) {
    this.#fetch = opts.fetch ?? ((...a) => globalThis.fetch(...a));
    this.#base = opts.baseUrl ?? '';
    this.#now = opts.now ?? Date.now;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** The current access token, or null (no refresh attempted). */
  get accessToken(): string | null {
    return this.#token;
  }

  /** Calls `fn` now and on every change; returns the unsubscriber. */
  subscribe(fn: (s: SessionState) => void): () => void {
    this.#listeners.add(fn);
    fn(this.#state);
    return () => this.#listeners.delete(fn);
  }

  async login(email: string, password: string): Promise<SessionUser> {
    return this.#accept(await this.#post('/auth/login', { email, password }));
  }

  async register(email: string, password: string, locale?: string): Promise<SessionUser> {
    return this.#accept(await this.#post('/auth/register', { email, password, ...(locale ? { locale } : {}) }));
  }

  /**
   * Exchanges the refresh cookie for a new access token. Concurrent callers share one
   * request (two at once would present the same single-use refresh token twice). False
   * when the cookie is gone or refused: the session is then signed out.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= (async () => {
      try {
        this.#accept(await this.#post('/auth/refresh'));
        return true;
      } catch (e) {
        // A network failure is not a refusal: keep the state, report failure.
        if (e instanceof AuthRequestError && e.error.code === 'NETWORK') return false;
        // Only a session that existed in this tab can have expired; a visitor whose
        // browser has no session is simply signed out.
        this.signOut(this.#token ? 'expired' : undefined);
        return false;
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  /** On start: a session exists if the cookie still yields a token. */
  async restore(): Promise<boolean> {
    if (this.#token && this.#expiresAt - this.#now() > EARLY_REFRESH_MS) return true;
    return this.refresh();
  }

  /**
   * A token valid for at least a little longer, refreshing an expiring one; null when
   * signed out or never signed in (requests then go anonymous).
   */
  async freshToken(): Promise<string | null> {
    if (!this.#token) return null;
    if (this.#expiresAt - this.#now() > EARLY_REFRESH_MS) return this.#token;
    return (await this.refresh()) ? this.#token : null;
  }

  async logout(): Promise<void> {
    try {
      await this.#post('/auth/logout');
    } catch {
      // Signing out locally matters more than the server's answer.
    } finally {
      this.signOut('logout');
    }
  }

  /** Forgets the token (no server call). */
  signOut(reason?: SignOutReason): void {
    this.#token = null;
    this.#expiresAt = 0;
    this.#set(reason ? { status: 'signed-out', user: null, reason } : { status: 'signed-out', user: null });
  }

  /** The user changed (a plan change, a verified address) without a new token. */
  updateUser(patch: Partial<SessionUser>): void {
    if (this.#state.user) this.#set({ ...this.#state, user: { ...this.#state.user, ...patch } });
  }

  #accept(answer: AuthAnswer): SessionUser {
    this.#token = answer.accessToken;
    const at = Date.parse(answer.expiresAt);
    this.#expiresAt = Number.isFinite(at) ? at : this.#now() + 60_000;
    this.#set({ status: 'signed-in', user: answer.user });
    return answer.user;
  }

  #set(s: SessionState): void {
    this.#state = s;
    for (const fn of this.#listeners) fn(s);
  }

  async #post(path: string, body?: unknown): Promise<AuthAnswer> {
    let res: Response;
    try {
      res = await this.#fetch(`${this.#base}${path}`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', [CSRF_HEADER]: '1' },
        body: body === undefined ? '{}' : JSON.stringify(body),
      });
    } catch (e) {
      throw new AuthRequestError(fromHttp(undefined, String(e)));
    }
    if (res.status === 204) return undefined as unknown as AuthAnswer;
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) throw new AuthRequestError(authError(res, json));
    const a = json as Partial<AuthAnswer> | null;
    if (!a || typeof a.accessToken !== 'string' || !a.user) {
      throw new AuthRequestError({ code: 'UNKNOWN', serverMessage: 'malformed answer from ' + path });
    }
    return a as AuthAnswer;
  }
}

/**
 * Reads an error answer of a cookie endpoint: `{error: {code, message, ...}}`, or a
 * GraphQL-style `{errors: [...]}`, or just the HTTP status.
 */
function authError(res: Response, json: unknown): ApiError {
  const body = (json ?? {}) as { error?: WireError & { code?: string }; errors?: WireError[] };
  let err: ApiError;
  if (body.error && typeof body.error === 'object') {
    const { code, message, ...rest } = body.error as Record<string, unknown>;
    err = fromWireError({ message: message as string, extensions: { code, ...rest, ...(body.error.extensions ?? {}) } }, res.status);
  } else if (Array.isArray(body.errors) && body.errors[0]) {
    err = fromWireError(body.errors[0], res.status);
  } else {
    err = fromHttp(res.status);
  }
  if (err.code === 'UNKNOWN') err = { ...fromHttp(res.status, err.serverMessage), ...pick(err) };
  if (err.code === 'RATE_LIMITED' && err.retryAfter === undefined) {
    const h = Number(res.headers.get('Retry-After'));
    if (Number.isFinite(h) && h > 0) err.retryAfter = h;
  }
  return err;
}

function pick(e: ApiError): Partial<ApiError> {
  const { code: _code, ...rest } = e;
  return rest;
}
