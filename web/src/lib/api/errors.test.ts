import { describe, expect, it } from 'vitest';
import { ERROR_CODES, fromHttp, fromWireError, type ApiError, type ErrorCode } from './errors';
import { describeError } from './messages';

const wire = (code: string, ext: Record<string, unknown> = {}, message = 'server says') => ({
  message,
  extensions: { code, ...ext },
});

describe('fromWireError', () => {
  it('reads the code and the extensions each code carries', () => {
    expect(fromWireError(wire('BAD_USER_INPUT', { field: 'input.title' }, 'input.title: too long'))).toEqual({
      code: 'BAD_USER_INPUT',
      serverMessage: 'input.title: too long',
      field: 'input.title',
    });
    expect(
      fromWireError(wire('QUOTA_EXCEEDED', { metric: 'scans', limit: 20, resetsAt: '2026-12-01T00:00:00+00:00' })),
    ).toMatchObject({ code: 'QUOTA_EXCEEDED', metric: 'SCANS', limit: 20, resetsAt: '2026-12-01T00:00:00+00:00' });
    expect(fromWireError(wire('RATE_LIMITED', { retryAfter: 7 }))).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 7 });
    expect(fromWireError(wire('INTERNAL', { requestId: 'req-42' }))).toMatchObject({ code: 'INTERNAL', requestId: 'req-42' });
  });

  it('recognises the errors async-graphql raises without a code', () => {
    expect(fromWireError({ message: 'Query is too complex.' }).code).toBe('QUERY_TOO_COMPLEX');
    expect(fromWireError({ message: 'Query is nested too deep.' }).code).toBe('QUERY_TOO_COMPLEX');
    expect(fromWireError({ message: ' --> 1:3\n  |\n1 | {\n  |   ^---\n  |\n  = expected selection' }).code).toBe(
      'GRAPHQL_PARSE_FAILED',
    );
    expect(fromWireError({ message: 'Unknown field "nope" on type "Query".' }).code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(fromWireError({ message: 'gateway' }, 503).code).toBe('SERVICE_UNAVAILABLE');
    expect(fromWireError({ message: 'something new' }).code).toBe('UNKNOWN');
    expect(fromWireError(wire('SOMETHING_NEW')).code).toBe('UNKNOWN');
  });

  it('keeps codes the server may add later when they are known here', () => {
    for (const code of ['QUERY_TOO_COMPLEX', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'SERVICE_UNAVAILABLE']) {
      expect(fromWireError(wire(code)).code).toBe(code);
    }
  });
});

describe('fromHttp', () => {
  it('maps statuses and network failures', () => {
    expect(fromHttp(undefined).code).toBe('NETWORK');
    expect(fromHttp(401).code).toBe('UNAUTHENTICATED');
    expect(fromHttp(403).code).toBe('FORBIDDEN');
    expect(fromHttp(429).code).toBe('RATE_LIMITED');
    expect(fromHttp(503).code).toBe('SERVICE_UNAVAILABLE');
    expect(fromHttp(500).code).toBe('INTERNAL');
  });
});

describe('describeError', () => {
  const sample: Record<ErrorCode, ApiError> = Object.fromEntries(
    ERROR_CODES.map((code) => [code, { code, serverMessage: 'x' }]),
  ) as Record<ErrorCode, ApiError>;

  it('has a distinct, non-empty message for every code in both languages', () => {
    for (const locale of ['fr', 'en'] as const) {
      const titles = new Set<string>();
      for (const code of ERROR_CODES) {
        const v = describeError(sample[code], locale);
        expect(v.title, code).not.toBe('');
        expect(v.message, code).not.toBe('');
        titles.add(v.title);
      }
      // UNSUPPORTED_MEDIA_TYPE, GRAPHQL_PARSE_FAILED and GRAPHQL_VALIDATION_FAILED share
      // "update the app": each means this build sends what the server no longer takes.
      expect(titles.size).toBe(ERROR_CODES.length - 2);
    }
    expect(describeError(sample.CONFLICT, 'fr').message).not.toBe(describeError(sample.CONFLICT, 'en').message);
  });

  it('QUOTA_EXCEEDED names the metric, the limit and the reset date, with an upgrade action', () => {
    const err: ApiError = { code: 'QUOTA_EXCEEDED', serverMessage: '', metric: 'SCANS', limit: 20, resetsAt: '2026-12-01T00:00:00Z' };
    const fr = describeError(err, 'fr');
    expect(fr.message).toContain('20 analyses');
    expect(fr.message).toContain('1 déc. 2026');
    expect(fr.action).toEqual({ label: 'Changer d’offre', href: '/app/billing' });
    const en = describeError(err, 'en');
    expect(en.message).toContain('20 scans');
    expect(en.message).toContain('1 Dec 2026');
    expect(en.action?.label).toBe('Upgrade');
  });

  it('QUOTA_EXCEEDED on storage shows bytes readably and no reset for a gauge', () => {
    const err: ApiError = { code: 'QUOTA_EXCEEDED', serverMessage: '', metric: 'STORAGE_BYTES', limit: 524288000 };
    expect(describeError(err, 'en').message).toContain('500 MB storage');
    expect(describeError(err, 'en').message).toContain('Remove some');
  });

  it('SUBSCRIPTION_INACTIVE links to billing; UNAUTHENTICATED to sign-in in the right language', () => {
    expect(describeError(sample.SUBSCRIPTION_INACTIVE, 'en').action?.href).toBe('/app/billing');
    expect(describeError(sample.UNAUTHENTICATED, 'en').action?.href).toBe('/en/login');
    expect(describeError(sample.UNAUTHENTICATED, 'fr').action?.href).toBe('/login');
  });

  it('RATE_LIMITED says how long to wait; INTERNAL quotes the request id', () => {
    expect(describeError({ code: 'RATE_LIMITED', serverMessage: '', retryAfter: 12 }, 'fr').message).toContain('12 s');
    const internal = describeError({ code: 'INTERNAL', serverMessage: '', requestId: 'req-42' }, 'en');
    expect(internal.message).toContain('req-42');
    expect(internal.requestId).toBe('req-42');
    expect(internal.retryable).toBe(true);
  });

  it('ACCOUNT_SUSPENDED quotes the reason the admin gave; 413 and 415 have their codes', () => {
    const err: ApiError = { code: 'ACCOUNT_SUSPENDED', serverMessage: 'this account is suspended (chargeback fraud); contact support to have it lifted' };
    expect(describeError(err, 'fr').message).toContain('« chargeback fraud »');
    expect(describeError(err, 'en').message).toContain('“chargeback fraud”');
    expect(describeError({ code: 'ACCOUNT_SUSPENDED', serverMessage: '' }, 'en').message).not.toContain('reason');
    expect(fromHttp(413).code).toBe('QUERY_TOO_COMPLEX');
    expect(fromHttp(415).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('BAD_USER_INPUT names the field to attach the message to', () => {
    const v = describeError({ code: 'BAD_USER_INPUT', serverMessage: 'input.title: too long', field: 'input.title' }, 'en');
    expect(v.field).toBe('title');
    expect(v.message).toContain('“title”');
    expect(v.message).toContain('too long');
  });
});
