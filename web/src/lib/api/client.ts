// The app's GraphQL client: urql over HTTP through the authenticated fetch, and
// graphql-ws for subscriptions with the token in `connection_init`.
import { Client, cacheExchange, fetchExchange, subscriptionExchange, type CombinedError } from '@urql/core';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { fromHttp, fromWireError, type ApiError } from './errors';
import { Session } from './session';
import { createAuthFetch, type TransportOptions } from './transport';

export interface Api {
  session: Session;
  client: Client;
  ws: WsClient;
}

function wsUrl(): string {
  const loc = globalThis.location;
  if (!loc) return 'ws://127.0.0.1:8080/graphql/ws';
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/graphql/ws`;
}

/** Builds the client for one browser tab. */
export function createApi(opts: TransportOptions & { session?: Session } = {}): Api {
  const session = opts.session ?? new Session();
  // Set when the server closed the socket for its token (4401 expired, 4403 revoked): the
  // next connection refreshes first instead of presenting the same token again.
  let mustRefresh = false;
  const ws = createWsClient({
    url: wsUrl(),
    lazy: true,
    // Called on every (re)connection, so a reconnect presents a fresh token.
    connectionParams: async () => {
      let token: string | null;
      if (mustRefresh) {
        mustRefresh = false;
        token = (await session.refresh()) ? session.accessToken : null;
      } else {
        token = await session.freshToken();
      }
      return token ? { authorization: `Bearer ${token}` } : {};
    },
    // 4401 and 4403 are fatal to graphql-ws by default; while signed in, reconnecting
    // after a refresh is right.
    shouldRetry: () => session.state.status === 'signed-in',
    retryAttempts: 8,
    on: {
      closed: (event) => {
        const code = (event as { code?: number } | undefined)?.code;
        if (code === 4401 || code === 4403) mustRefresh = true;
      },
    },
  });
  const client = new Client({
    url: '/graphql',
    fetch: createAuthFetch(session, opts),
    // GET /graphql is GraphiQL on this server: queries go by POST.
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  session.subscribe((s) => {
    // A socket authenticated as someone who signed out must not stay open.
    if (s.status === 'signed-out') void ws.terminate();
  });
  return { session, client, ws };
}

/** The first error of a urql result, mapped. */
export function toApiError(e: CombinedError): ApiError {
  const g = e.graphQLErrors[0];
  if (g) return fromWireError({ message: g.message, extensions: g.extensions as Record<string, unknown> }, e.response?.status);
  const status = (e.response as Response | undefined)?.status;
  return fromHttp(status, e.networkError?.message ?? e.message);
}
