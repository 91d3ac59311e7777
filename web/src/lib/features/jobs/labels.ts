import type { JobKind, JobStatus } from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';
import { compareInstants } from '$lib/api/datetime';

const KIND: Record<JobKind, [string, string]> = {
  SCAN: ['Analyse', 'Scan'],
  PREPARE: ['Préparation', 'Preparation'],
  PUBLISH: ['Publication', 'Publication'],
};
const STATUS: Record<JobStatus, [string, string]> = {
  QUEUED: ['En attente', 'Queued'],
  RUNNING: ['En cours', 'Running'],
  SUCCEEDED: ['Terminée', 'Done'],
  FAILED: ['Échouée', 'Failed'],
  CANCELED: ['Annulée', 'Canceled'],
};

export const kindLabel = (k: JobKind, l: Locale) => KIND[k][l === 'fr' ? 0 : 1];
export const jobStatusLabel = (s: JobStatus, l: Locale) => STATUS[s][l === 'fr' ? 0 : 1];
export const jobTone = (s: JobStatus) =>
  s === 'SUCCEEDED' ? 'badge-ok' : s === 'FAILED' ? 'badge-danger' : s === 'RUNNING' ? 'badge-warn' : '';
export const isActive = (s: JobStatus) => s === 'QUEUED' || s === 'RUNNING';

/** Applies a live update to a list: replaces the job, or puts a new one first. */
export function mergeJob<J extends { id: string; updatedAt: string }>(list: J[], job: J): J[] {
  const i = list.findIndex((j) => j.id === job.id);
  if (i === -1) return [job, ...list];
  // Events can arrive out of order: keep the newest version.
  if (compareInstants(list[i]!.updatedAt, job.updatedAt) > 0) return list;
  const copy = list.slice();
  copy[i] = job;
  return copy;
}
