// Presigned uploads, shared by photos (onboarding) and ticket attachments (support):
// check a file before asking the server for anything, then PUT its bytes to the URL the
// server signed, with progress. XMLHttpRequest, because fetch reports no upload progress.
import { fromHttp, type ApiError } from './errors';

/** What a picker accepts: MIME types and a size limit. */
export interface FileRule {
  types: readonly string[];
  maxBytes: number;
}

/** Why a file is refused before upload. */
export type FileProblem = { kind: 'type' } | { kind: 'size' } | { kind: 'empty' };

/** The upload target the server answers with (`PhotoUpload`, `TicketAttachmentUpload`). */
export interface PresignedPut {
  uploadUrl: string;
  method: string;
  headers: readonly { name: string; value: string }[];
}

const BY_EXTENSION: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  heic: 'image/heic',
  pdf: 'application/pdf',
  zip: 'application/zip',
};

/** The file's MIME type: the browser's, or from its extension when the browser has none (HEIC). */
export function fileType(file: { type: string; name: string }): string {
  const t = file.type.trim().toLowerCase();
  if (t) return t === 'image/jpg' ? 'image/jpeg' : t;
  return BY_EXTENSION[file.name.split('.').pop()?.toLowerCase() ?? ''] ?? '';
}

/** Null when the file may be uploaded; else why not. */
export function checkFile(file: { type: string; name: string; size: number }, rule: FileRule): FileProblem | null {
  if (!rule.types.includes(fileType(file))) return { kind: 'type' };
  if (file.size <= 0) return { kind: 'empty' };
  if (file.size > rule.maxBytes) return { kind: 'size' };
  return null;
}

/** SHA-256 of the bytes (hex), or undefined where the browser has no WebCrypto (plain HTTP). */
export async function sha256Hex(file: Blob): Promise<string | undefined> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return undefined;
  const digest = await subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// Headers a page may not set itself; the browser adds them.
const FORBIDDEN = new Set(['content-length', 'host', 'connection', 'expect']);

export interface PutOptions {
  /** Told 0…1 as bytes leave. */
  onProgress?: (ratio: number) => void;
  signal?: AbortSignal;
  /** For tests. */
  xhr?: () => XMLHttpRequest;
}

/** PUTs `file` to a presigned URL with exactly the headers it was signed with. */
export function putFile(target: PresignedPut, file: Blob, opts: PutOptions = {}): Promise<{ error?: ApiError }> {
  return new Promise((resolve) => {
    const xhr = opts.xhr ? opts.xhr() : new XMLHttpRequest();
    xhr.open(target.method || 'PUT', target.uploadUrl);
    for (const h of target.headers) if (!FORBIDDEN.has(h.name.toLowerCase())) xhr.setRequestHeader(h.name, h.value);
    xhr.upload.onprogress = (e: ProgressEvent) => {
      if (e.lengthComputable && e.total > 0) opts.onProgress?.(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        opts.onProgress?.(1);
        resolve({});
      } else {
        resolve({ error: fromHttp(xhr.status, String(xhr.responseText ?? '').slice(0, 200)) });
      }
    };
    xhr.onerror = () => resolve({ error: fromHttp(undefined, 'upload failed') });
    xhr.onabort = () => resolve({ error: { code: 'NETWORK', serverMessage: 'upload aborted' } });
    opts.signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}
