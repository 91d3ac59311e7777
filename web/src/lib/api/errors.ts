// Every failure the API can answer, as one value the UI can act on (messages.ts turns it
// into French or English). The codes are the server's `extensions.code` (see
// ../shared/DESIGN.md "Errors"), plus NETWORK and UNKNOWN for failures that never reached
// GraphQL.

export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'QUOTA_EXCEEDED',
  'SUBSCRIPTION_INACTIVE',
  'ACCOUNT_SUSPENDED',
  'RATE_LIMITED',
  'CONFLICT',
  'INTERNAL',
  'QUERY_TOO_COMPLEX',
  'RESPONSE_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'SERVICE_UNAVAILABLE',
  'NETWORK',
  'UNKNOWN',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** One failure, with what the server said about it. */
export interface ApiError {
  code: ErrorCode;
  /** The server's own message (English, for logs and support); never shown alone. */
  serverMessage: string;
  /** BAD_USER_INPUT: the input path at fault (`input.title`, `email`). */
  field?: string;
  /** QUOTA_EXCEEDED: the metric (SCANS, PREPARATIONS, CONNECTED_ACCOUNTS, STORAGE_BYTES). */
  metric?: string;
  /** QUOTA_EXCEEDED: the plan's limit. */
  limit?: number;
  /** QUOTA_EXCEEDED: when the period resets (absent for gauges). */
  resetsAt?: string;
  /** RATE_LIMITED: seconds to wait. */
  retryAfter?: number;
  /** INTERNAL: the request id to quote to support. */
  requestId?: string;
}

/** The shape of one GraphQL error on the wire (only what is read here). */
export interface WireError {
  message?: string;
  extensions?: Record<string, unknown> | null;
}

const KNOWN = new Set<string>(ERROR_CODES);

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/**
 * Reads one GraphQL error. Errors without a code are those async-graphql raises before
 * execution (parse, validation, limits); they are recognised by their message.
 */
export function fromWireError(e: WireError, httpStatus?: number): ApiError {
  const ext = e.extensions ?? {};
  const serverMessage = e.message ?? '';
  let code = str(ext.code);
  if (!code || !KNOWN.has(code)) {
    if (httpStatus !== undefined && httpStatus >= 502 && httpStatus <= 504) code = 'SERVICE_UNAVAILABLE';
    else if (/too complex|complexity|too deep|depth/i.test(serverMessage)) code = 'QUERY_TOO_COMPLEX';
    else if (/parse error|syntax error|expected/i.test(serverMessage)) code = 'GRAPHQL_PARSE_FAILED';
    else if (/unknown field|cannot query field|unknown argument|unknown type|required|is not defined/i.test(serverMessage))
      code = 'GRAPHQL_VALIDATION_FAILED';
    else code = 'UNKNOWN';
  }
  const err: ApiError = { code: code as ErrorCode, serverMessage };
  const field = str(ext.field);
  if (field) err.field = field;
  const metric = str(ext.metric);
  if (metric) err.metric = metric.toUpperCase();
  const limit = num(ext.limit);
  if (limit !== undefined) err.limit = limit;
  const resetsAt = str(ext.resetsAt);
  if (resetsAt) err.resetsAt = resetsAt;
  const retryAfter = num(ext.retryAfter);
  if (retryAfter !== undefined) err.retryAfter = retryAfter;
  const requestId = str(ext.requestId);
  if (requestId) err.requestId = requestId;
  return err;
}

/** A failure before any GraphQL answer: the network, or an HTTP status without a body. */
export function fromHttp(status: number | undefined, message = ''): ApiError {
  if (status === undefined || status === 0) return { code: 'NETWORK', serverMessage: message };
  if (status === 400 || status === 422) return { code: 'BAD_USER_INPUT', serverMessage: message };
  if (status === 401) return { code: 'UNAUTHENTICATED', serverMessage: message };
  if (status === 403) return { code: 'FORBIDDEN', serverMessage: message };
  if (status === 404) return { code: 'NOT_FOUND', serverMessage: message };
  if (status === 409) return { code: 'CONFLICT', serverMessage: message };
  if (status === 413) return { code: 'QUERY_TOO_COMPLEX', serverMessage: message };
  if (status === 415) return { code: 'UNSUPPORTED_MEDIA_TYPE', serverMessage: message };
  if (status === 429) return { code: 'RATE_LIMITED', serverMessage: message };
  if (status >= 502 && status <= 504) return { code: 'SERVICE_UNAVAILABLE', serverMessage: message };
  if (status >= 500) return { code: 'INTERNAL', serverMessage: message };
  return { code: 'UNKNOWN', serverMessage: message };
}

/** Whether a value is an ApiError. */
export function isApiError(v: unknown): v is ApiError {
  return typeof v === 'object' && v !== null && typeof (v as ApiError).code === 'string' && KNOWN.has((v as ApiError).code);
}
