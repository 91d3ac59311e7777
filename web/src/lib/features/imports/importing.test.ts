import { describe, expect, it } from 'vitest';
import { checkFile } from '$lib/api/upload';
import type { ImportStatus } from '$lib/gql/graphql';
import { importRule, importText, isEnded, mergeImport, reportFile, runningImport, totals } from './importing';

describe('import page logic', () => {
  it('accepts zips as either browser names them, within the limit', () => {
    const rule = importRule(1000);
    expect(checkFile({ name: 'a.zip', type: 'application/zip', size: 10 }, rule)).toBeNull();
    expect(checkFile({ name: 'a.zip', type: 'application/x-zip-compressed', size: 10 }, rule)).toBeNull();
    expect(checkFile({ name: 'a.zip', type: '', size: 10 }, rule)).toBeNull();
    expect(checkFile({ name: 'a.zip', type: 'application/zip', size: 1001 }, rule)).toEqual({ kind: 'size' });
    expect(checkFile({ name: 'a.tar', type: 'application/x-tar', size: 10 }, rule)).toEqual({ kind: 'type' });
  });

  it('follows the import still running and merges its live states', () => {
    type I = { id: string; status: ImportStatus; recordsDone: number };
    const a: I = { id: 'a', status: 'SUCCEEDED', recordsDone: 3 };
    const b: I = { id: 'b', status: 'RUNNING', recordsDone: 1 };
    expect(runningImport([b, a])?.id).toBe('b');
    expect(runningImport([a])).toBeUndefined();
    expect(isEnded('FAILED') && isEnded('SUCCEEDED') && !isEnded('QUEUED')).toBe(true);
    const merged = mergeImport([b, a], { ...b, recordsDone: 2 });
    expect(merged.map((i) => [i.id, i.recordsDone])).toEqual([['b', 2], ['a', 3]]);
    expect(mergeImport([a], b).map((i) => i.id)).toEqual(['b', 'a']);
  });

  it('sums the files and names the report downloads after the upload', () => {
    const files = [
      { records: 3, imported: 2, alreadyImported: 0, rejected: 1 },
      { records: 2, imported: 0, alreadyImported: 2, rejected: 0 },
    ];
    expect(totals(files)).toEqual({ records: 5, imported: 2, already: 2, rejected: 1 });
    const report = { report: { files: [] }, reportText: 'plinth import: …\n' };
    expect(reportFile('Mon historique.zip', 'json', report)).toEqual({
      name: 'Mon-historique-report.json',
      type: 'application/json',
      body: '{\n  "files": []\n}\n',
    });
    expect(reportFile('../x.ZIP', 'text', report)).toMatchObject({ name: '-x-report.txt', body: 'plinth import: …\n' });
  });

  it('says the totals in both languages', () => {
    expect(importText.fr.succeeded(2, 1, 0)).toBe('Import terminé : 2 enregistrements importés, 1 déjà présent, 0 rejeté.');
    expect(importText.en.succeeded(1, 0, 2)).toBe('Import finished: 1 record imported, 0 already there, 2 rejected.');
  });
});
