import { describe, expect, it } from 'vitest';
import { accountStatusLabel, accountsGauge, platformLabel, roomForOneMore, sortAccounts } from './platforms';

describe('marketplace accounts', () => {
  it('names platforms and states in both languages', () => {
    expect(platformLabel('EBAY')).toBe('eBay');
    expect(accountStatusLabel('CONNECTED', 'fr')).toBe('Connecté');
    expect(accountStatusLabel('ERROR', 'en')).toBe('Credentials refused');
  });

  it('lists usable accounts first, then refused, then disconnected, newest first within each', () => {
    const a = (id: string, status: 'CONNECTED' | 'ERROR' | 'DISCONNECTED', createdAt: string) => ({ id, status, createdAt });
    const list = [a('old', 'CONNECTED', '2026-01-01'), a('gone', 'DISCONNECTED', '2026-11-01'), a('bad', 'ERROR', '2026-02-01'), a('new', 'CONNECTED', '2026-10-01')];
    expect(sortAccounts(list).map((x) => x.id)).toEqual(['new', 'old', 'bad', 'gone']);
  });

  it('reads the connected-accounts gauge and whether one more fits', () => {
    const usage = [
      { metric: 'SCANS', used: 1, limit: 20 },
      { metric: 'CONNECTED_ACCOUNTS', used: 1, limit: 1 },
    ];
    expect(accountsGauge(usage)).toEqual({ metric: 'CONNECTED_ACCOUNTS', used: 1, limit: 1 });
    expect(roomForOneMore(accountsGauge(usage))).toBe(false);
    expect(roomForOneMore({ used: 2, limit: 3 })).toBe(true);
    expect(roomForOneMore(undefined)).toBe(true);
  });
});
