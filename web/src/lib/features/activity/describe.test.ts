import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeAction, describeSubject, LABELLED_ACTIONS } from './describe';

// The server's sources that write activity entries, and the action literals in them.
const API = join(__dirname, '../../../../../api/src');
const NAMESPACES = 'account|session|api_token|billing|import|job|draft|marketplace_account|photo|support|ticket';

function rustFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? rustFiles(path) : name.endsWith('.rs') ? [path] : [];
  });
}

function serverActions(): Set<string> {
  const found = new Set<string>();
  for (const file of rustFiles(API)) {
    const text = readFileSync(file, 'utf8');
    if (!/activity::(record|Entry|\{)|use crate::activity/.test(text)) continue;
    for (const m of text.matchAll(new RegExp(`"((?:${NAMESPACES})\\.[a-z_]+)"`, 'g'))) found.add(m[1]!);
  }
  return found;
}

describe('activity labels', () => {
  it('cover every action the server writes, in both languages', () => {
    const actions = serverActions();
    expect(actions.size).toBeGreaterThan(30);
    const missing = [...actions].filter((a) => !LABELLED_ACTIONS.includes(a));
    expect(missing).toEqual([]);
    for (const a of actions) {
      expect(describeAction(a, 'fr')).not.toBe(a);
      expect(describeAction(a, 'en')).not.toBe(describeAction(a, 'fr'));
    }
  });
  it('show an unknown action as it is', () => {
    expect(describeAction('something.new', 'en')).toBe('something.new');
  });
});

describe('activity subjects', () => {
  it('names the known kinds in both languages and shows others as they are', () => {
    expect(describeSubject('draft', 'fr')).toBe('Brouillon');
    expect(describeSubject('api_token', 'en')).toBe('API token');
    expect(describeSubject('something_new', 'fr')).toBe('something_new');
  });
});
