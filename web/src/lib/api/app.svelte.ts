// The browser's single API instance, a reactive mirror of the session for components, and
// small rune helpers for queries and mutations.
import type { AnyVariables, TypedDocumentNode } from '@urql/core';
import { untrack } from 'svelte';
import { createApi, toApiError, type Api } from './client';
import type { ApiError } from './errors';
import type { SessionState } from './session';
import type { Result } from './transport';

let instance: Api | null = null;

/** Reactive: the session's state (status, user, why it ended). */
export const auth: SessionState = $state({ status: 'unknown', user: null });

/**
 * Reactive: how often the subscription socket connected again after its first connection.
 * The server closes a user's sockets when their plan or account state changes (the
 * tokens that opened them are revoked), so what arrived meanwhile may be missed: pages
 * showing such state ask again (`refetchOnResync`).
 */
export const reconnects = $state({ n: 0 });

/** Reactive: a request waiting out RATE_LIMITED (seconds), shown as a notice. */
export const waiting = $state({ seconds: 0 });

/** The API of this tab, created on first use (in the browser only). */
export function api(): Api {
  if (!instance) {
    instance = createApi({
      onWait: (s) => {
        waiting.seconds = s;
        setTimeout(() => (waiting.seconds = 0), s * 1000);
      },
    });
    let connected = false;
    instance.ws.on('connected', () => {
      if (connected) reconnects.n += 1;
      connected = true;
    });
    instance.session.subscribe((s) => {
      auth.status = s.status;
      auth.user = s.user;
      auth.reason = s.reason;
    });
  }
  return instance;
}

/** For tests: replaces the instance. */
export function setApi(a: Api | null): void {
  instance = a;
}

export interface QueryState<D> {
  readonly data: D | undefined;
  readonly error: ApiError | undefined;
  readonly fetching: boolean;
  /** Asks the server again (network-only). */
  refetch(): void;
}

/**
 * Runs a query while the calling component lives, again whenever `variables()` changes.
 * Must be called during component initialisation.
 */
export function createQuery<D, V extends AnyVariables>(
  doc: TypedDocumentNode<D, V>,
  variables: () => V,
): QueryState<D> {
  let data = $state<D | undefined>(undefined);
  let error = $state<ApiError | undefined>(undefined);
  let fetching = $state(true);
  let nonce = $state(0);
  $effect(() => {
    const vars = variables();
    const forced = nonce > 0;
    fetching = true;
    const sub = api()
      .client.query(doc, vars, forced ? { requestPolicy: 'network-only' } : {})
      .subscribe((r) => {
        if (r.data !== undefined) data = r.data;
        error = r.error ? toApiError(r.error) : undefined;
        fetching = Boolean(r.stale);
      });
    return () => sub.unsubscribe();
  });
  return {
    get data() {
      return data;
    },
    get error() {
      return error;
    },
    get fetching() {
      return fetching;
    },
    refetch() {
      nonce++;
    },
  };
}

/**
 * Asks `q` again (network-only) whenever the socket reconnected or `also()` changed since
 * the calling component started. Must be called during component initialisation.
 */
export function refetchOnResync(q: QueryState<unknown>, also: () => unknown = () => null): void {
  let started = false;
  $effect(() => {
    void reconnects.n;
    also();
    if (started) untrack(() => q.refetch());
    started = true;
  });
}

/**
 * Follows a subscription while the calling component lives (again whenever the value of
 * `variables()` changes; `null` variables pause it); `live` says whether the socket delivers.
 * Variables are compared by value: a handler that updates the state `variables()` reads
 * (a followed job replaced by its newer state) keeps the subscription open, since
 * re-opening it would lose what the server sends in between.
 * Must be called during component initialisation.
 */
export function createSubscription<D, V extends AnyVariables>(
  doc: TypedDocumentNode<D, V>,
  variables: () => V | null,
  onData: (d: D) => void,
) {
  let live = $state(false);
  const key = $derived.by(() => {
    const vars = variables();
    return vars === null ? null : JSON.stringify(vars);
  });
  $effect(() => {
    if (key === null) return;
    const vars = JSON.parse(key) as V;
    const sub = api()
      .client.subscription(doc, vars)
      .subscribe((r) => {
        live = !r.error;
        if (r.data) onData(r.data);
      });
    live = true;
    return () => sub.unsubscribe();
  });
  return {
    get live() {
      return live;
    },
  };
}

/** Runs a mutation; the first error is mapped. */
export async function mutate<D, V extends AnyVariables>(doc: TypedDocumentNode<D, V>, variables: V): Promise<Result<D>> {
  const r = await api().client.mutation(doc, variables).toPromise();
  if (r.error) return { error: toApiError(r.error) };
  if (r.data == null) return { error: { code: 'UNKNOWN', serverMessage: 'no data' } };
  return { data: r.data };
}

/** Runs a query once (network-only). */
export async function fetchOnce<D, V extends AnyVariables>(doc: TypedDocumentNode<D, V>, variables: V): Promise<Result<D>> {
  const r = await api().client.query(doc, variables, { requestPolicy: 'network-only' }).toPromise();
  if (r.error) return { error: toApiError(r.error) };
  if (r.data == null) return { error: { code: 'UNKNOWN', serverMessage: 'no data' } };
  return { data: r.data };
}

interface Connection<N> {
  edges: { cursor: string; node: N }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** A cursor-paged list: first page on start (and when `variables()` change), then "more". */
export function createPaged<D, V extends AnyVariables, N>(
  doc: TypedDocumentNode<D, V>,
  variables: () => V,
  pick: (d: D) => Connection<N>,
) {
  let items = $state<N[]>([]);
  let hasNext = $state(false);
  let error = $state<ApiError | undefined>(undefined);
  let fetching = $state(false);
  let loaded = $state(false);
  let cursor: string | null = null;
  let generation = 0;

  async function load(more: boolean) {
    const gen = more ? generation : ++generation;
    fetching = true;
    const r = await fetchOnce(doc, { ...variables(), after: more ? cursor : null } as V);
    if (gen !== generation) return;
    fetching = false;
    if (r.error) {
      error = r.error;
      return;
    }
    error = undefined;
    const c = pick(r.data);
    const nodes = c.edges.map((e) => e.node);
    items = more ? [...items, ...nodes] : nodes;
    hasNext = c.pageInfo.hasNextPage;
    cursor = c.pageInfo.endCursor;
    loaded = true;
  }

  $effect(() => {
    variables();
    void load(false);
  });

  return {
    get items() {
      return items;
    },
    set items(v: N[]) {
      items = v;
    },
    get hasNext() {
      return hasNext;
    },
    get error() {
      return error;
    },
    get fetching() {
      return fetching;
    },
    get loaded() {
      return loaded;
    },
    more: () => load(true),
    reload: () => load(false),
  };
}
