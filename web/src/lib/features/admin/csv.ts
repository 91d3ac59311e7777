// Downloads a CSV export with the admin's bearer token (the route is not GraphQL, so
// it does not go through urql): fetch, refresh once on 401, then save the blob.
import { fromHttp, fromWireError, type ApiError } from '$lib/api/errors';
import type { Session } from '$lib/api/session';

/** The export's bytes, or why not. */
export async function fetchCsv(session: Session, url: string, doFetch: typeof fetch = (...a) => globalThis.fetch(...a)): Promise<{ blob: Blob } | { error: ApiError }> {
  const send = async () => {
    const token = await session.freshToken();
    return doFetch(url, { headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), Accept: 'text/csv' }, credentials: 'same-origin' });
  };
  let res: Response;
  try {
    res = await send();
    if (res.status === 401 && (await session.refresh())) res = await send();
  } catch (e) {
    return { error: fromHttp(undefined, String(e)) };
  }
  if (res.ok) return { blob: await res.blob() };
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string }; errors?: { message?: string; extensions?: Record<string, unknown> }[] };
    if (body.error?.code) return { error: fromWireError({ message: body.error.message ?? '', extensions: { ...body.error } }, res.status) };
    if (body.errors?.[0]) return { error: fromWireError(body.errors[0], res.status) };
  } catch {
    // Not JSON: the status says enough.
  }
  return { error: fromHttp(res.status, text.slice(0, 200)) };
}

/** Offers a blob as a download under `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
