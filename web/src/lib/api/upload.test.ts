import { describe, expect, it } from 'vitest';
import { checkFile, fileType, putFile } from './upload';

const photo = { types: ['image/jpeg', 'image/png', 'image/webp', 'image/heic'], maxBytes: 1000 };

describe('checkFile', () => {
  it('accepts a listed type within the limit', () => {
    expect(checkFile({ name: 'a.jpg', type: 'image/jpeg', size: 1000 }, photo)).toBeNull();
  });
  it('refuses other types, empty files and files over the limit', () => {
    expect(checkFile({ name: 'a.gif', type: 'image/gif', size: 10 }, photo)).toEqual({ kind: 'type' });
    expect(checkFile({ name: 'a.png', type: 'image/png', size: 0 }, photo)).toEqual({ kind: 'empty' });
    expect(checkFile({ name: 'a.png', type: 'image/png', size: 1001 }, photo)).toEqual({ kind: 'size' });
  });
  it('falls back on the extension when the browser gives no type (HEIC)', () => {
    expect(fileType({ name: 'IMG_0001.HEIC', type: '' })).toBe('image/heic');
    expect(fileType({ name: 'x.jpg', type: 'image/jpg' })).toBe('image/jpeg');
    expect(checkFile({ name: 'IMG_0001.HEIC', type: '', size: 5 }, photo)).toBeNull();
    expect(checkFile({ name: 'notes', type: '', size: 5 }, photo)).toEqual({ kind: 'type' });
  });
});

class FakeXhr {
  static last: FakeXhr;
  method = '';
  url = '';
  headers: [string, string][] = [];
  status = 0;
  responseText = '';
  body: unknown;
  upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXhr.last = this;
  }
  open(m: string, u: string) {
    this.method = m;
    this.url = u;
  }
  setRequestHeader(n: string, v: string) {
    this.headers.push([n, v]);
  }
  send(b: unknown) {
    this.body = b;
  }
  abort() {
    this.onabort?.();
  }
}

describe('putFile', () => {
  const target = {
    uploadUrl: 'http://127.0.0.1:8080/storage/u/1?sig=x',
    method: 'PUT',
    headers: [
      { name: 'Content-Type', value: 'image/png' },
      { name: 'Content-Length', value: '3' },
    ],
  };

  it('sends the signed headers (not those the browser owns) and reports progress', async () => {
    const seen: number[] = [];
    const done = putFile(target, new Blob(['abc']), { onProgress: (r) => seen.push(r), xhr: () => new FakeXhr() as unknown as XMLHttpRequest });
    const x = FakeXhr.last;
    expect([x.method, x.url]).toEqual(['PUT', target.uploadUrl]);
    expect(x.headers).toEqual([['Content-Type', 'image/png']]);
    x.upload.onprogress?.({ lengthComputable: true, loaded: 1, total: 4 } as ProgressEvent);
    x.status = 200;
    x.onload?.();
    expect(await done).toEqual({});
    expect(seen).toEqual([0.25, 1]);
  });

  it('maps a refused upload and a network failure to errors', async () => {
    const refused = putFile(target, new Blob(['abc']), { xhr: () => new FakeXhr() as unknown as XMLHttpRequest });
    FakeXhr.last.status = 403;
    FakeXhr.last.responseText = 'signature invalid or expired';
    FakeXhr.last.onload?.();
    expect((await refused).error?.code).toBe('FORBIDDEN');
    const offline = putFile(target, new Blob(['abc']), { xhr: () => new FakeXhr() as unknown as XMLHttpRequest });
    FakeXhr.last.onerror?.();
    expect((await offline).error?.code).toBe('NETWORK');
  });
});
