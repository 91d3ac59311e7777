/** Where to go after signing in: a `next` inside the app, else the app's home. */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/app') && !next.startsWith('//') ? next : '/app';
}
