// The API explorer at GET /graphql (GraphiQL; the page is the server's, see
// api/src/http/graphql.rs): everything it loads is served by Plinth itself
// (/graphiql/vendor/, copied from the npm packages by scripts/graphiql.mjs).
//
// Authorization: the Headers tab holds `{"Authorization": "Bearer <token>"}`. It is sent
// with every HTTP request, and GraphiQL's fetcher puts the same headers into the
// WebSocket's `connection_init` payload for subscriptions (the server reads
// `authorization` there in either case). When this browser is signed in to the web app,
// the header is filled at load with a fresh access token from POST /auth/refresh (the
// session's HttpOnly cookie, exactly as a second tab of the app would get one): the app's
// own token stays in its memory, and this one lives only in this page (headers are not
// persisted). It expires like any access token (15 minutes at most): reload the page for
// another. Not signed in: sign in to the app in this browser, or paste a token (from
// `login`, `plinth admin worker-token`, an API token) into the Headers tab.
(async function explorer() {
  'use strict';
  const token = await signedInToken();
  const headers = token ? JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2) : '';
  const wsUrl = new URL('/graphql/ws', window.location.href);
  wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  const fetcher = GraphiQL.createFetcher({
    url: new URL('/graphql', window.location.href).toString(),
    subscriptionUrl: wsUrl.toString(),
    fetch: (url, opts = {}) => fetch(url, { ...opts, credentials: 'same-origin' }),
  });
  const intro = token
    ? '# Signed in: the Headers tab carries this browser\'s session (a fresh access token).\n'
    : '# Not signed in: sign in to the app in this browser and reload, or paste\n' +
      '# {"Authorization": "Bearer <token>"} into the Headers tab below.\n';
  const defaultQuery =
    intro +
    '# The same header is sent in connection_init for subscriptions.\n\nquery Me {\n  me {\n    id\n    email\n    plan\n  }\n}\n';
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery,
      // Both, so a stored tab cannot bring back an older token; never persisted.
      headers,
      defaultHeaders: headers,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: token ? 'headers' : true,
    }),
  );

  /** An access token of this browser's web-app session, or null. */
  async function signedInToken() {
    try {
      const resp = await fetch('/auth/refresh', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-Plinth-CSRF': '1' },
      });
      if (!resp.ok) return null;
      const body = await resp.json();
      return typeof body.accessToken === 'string' ? body.accessToken : null;
    } catch {
      return null;
    }
  }
})();
