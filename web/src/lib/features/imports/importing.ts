// The import page's logic: which files may be picked, where an import stands, the
// report's downloads, and the page's words (French first).
import type { FileRule } from '$lib/api/upload';
import type { ImportStatus } from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';

/** The zips the page accepts (browsers name them either way), up to `maxBytes`. */
export function importRule(maxBytes: number): FileRule {
  return { types: ['application/zip', 'application/x-zip-compressed'], maxBytes };
}

export const isEnded = (s: ImportStatus) => s === 'SUCCEEDED' || s === 'FAILED';

/** The import to follow: the newest one still running, else none. */
export function runningImport<I extends { status: ImportStatus }>(list: I[]): I | undefined {
  return list.find((i) => !isEnded(i.status));
}

/** Puts a newer state of an import in the list (first when new). */
export function mergeImport<I extends { id: string }>(list: I[], next: I): I[] {
  const i = list.findIndex((x) => x.id === next.id);
  if (i === -1) return [next, ...list];
  const copy = list.slice();
  copy[i] = next;
  return copy;
}

/** Totals over the files of an import. */
export function totals(files: readonly { records: number; imported: number; alreadyImported: number; rejected: number }[]) {
  return files.reduce(
    (t, f) => ({
      records: t.records + f.records,
      imported: t.imported + f.imported,
      already: t.already + f.alreadyImported,
      rejected: t.rejected + f.rejected,
    }),
    { records: 0, imported: 0, already: 0, rejected: 0 },
  );
}

/** A download of the report: its file name, type and body. */
export interface ReportFile {
  name: string;
  type: string;
  body: string;
}

/** The report as a file: JSON (pretty) or text, named after the upload. */
export function reportFile(fileName: string, kind: 'json' | 'text', report: { report: unknown; reportText: string | null }): ReportFile {
  const base = fileName.replace(/\.zip$/i, '').replace(/[^\p{L}\p{N}._-]+/gu, '-').replace(/^\.+/, '').slice(0, 80) || 'import';
  if (kind === 'json') {
    return { name: `${base}-report.json`, type: 'application/json', body: `${JSON.stringify(report.report ?? {}, null, 2)}\n` };
  }
  return { name: `${base}-report.txt`, type: 'text/plain;charset=utf-8', body: report.reportText ?? '' };
}

const STATUS: Record<ImportStatus, [string, string]> = {
  QUEUED: ['En attente', 'Queued'],
  RUNNING: ['En cours', 'Running'],
  SUCCEEDED: ['Terminé', 'Done'],
  FAILED: ['Échoué', 'Failed'],
};

export const importStatusLabel = (s: ImportStatus, l: Locale) => STATUS[s][l === 'fr' ? 0 : 1];
export const importTone = (s: ImportStatus) =>
  s === 'SUCCEEDED' ? 'badge-ok' : s === 'FAILED' ? 'badge-danger' : s === 'RUNNING' ? 'badge-warn' : '';

export const importText = {
  fr: {
    title: 'Importer vos données',
    lead: 'Vous utilisiez la version mono-utilisateur ? Apportez son historique dans votre compte : brouillons, photos, tâches, journaux et comptes de plateformes. Exportez le dossier (format décrit dans la documentation), compressez-le en zip, puis envoyez-le ici. Rien de ce qui est déjà importé n’est importé deux fois, et l’historique ne consomme pas votre quota.',
    pick: 'Archive zip du dossier à importer',
    hint: (m: string) => `Un fichier .zip, ${m} au plus.`,
    running: 'Import en cours',
    progress: (done: number, total: number) => `${done} / ${total} enregistrements`,
    waiting: 'L’archive est en cours de vérification…',
    live: 'Suivi en direct',
    offline: 'Suivi en direct interrompu : la page se met à jour au retour de la connexion.',
    conflict: 'Un import est déjà en cours sur ce compte : attendez qu’il se termine avant d’en lancer un autre.',
    succeeded: (n: number, a: number, r: number) =>
      `Import terminé : ${n} enregistrement${n > 1 ? 's' : ''} importé${n > 1 ? 's' : ''}, ${a} déjà présent${a > 1 ? 's' : ''}, ${r} rejeté${r > 1 ? 's' : ''}.`,
    failed: 'L’import s’est arrêté',
    retryHint: 'Ce qui a été importé reste en place : relancez l’import, seul ce qui manque sera importé.',
    report: 'Rapport',
    downloadText: 'Télécharger le rapport (texte)',
    downloadJson: 'Télécharger le rapport (JSON)',
    history: 'Imports précédents',
    none: 'Aucun import pour l’instant.',
    file: 'Fichier',
    records: 'Enregistrements',
    imported: 'Importés',
    already: 'Déjà présents',
    rejected: 'Rejetés',
    status: 'État',
    started: 'Lancé le',
    back: 'Retour à la prise en main',
  },
  en: {
    title: 'Import your data',
    lead: 'Coming from the single-user version? Bring its history into your account: drafts, photos, jobs, logs and marketplace accounts. Export the folder (format in the documentation), zip it, then upload it here. Nothing already imported is imported twice, and history does not use your quota.',
    pick: 'Zip archive of the folder to import',
    hint: (m: string) => `A .zip file, ${m} at most.`,
    running: 'Import in progress',
    progress: (done: number, total: number) => `${done} / ${total} records`,
    waiting: 'Checking the archive…',
    live: 'Live',
    offline: 'Live updates interrupted: the page catches up when the connection is back.',
    conflict: 'An import is already running on this account: wait for it to end before starting another.',
    succeeded: (n: number, a: number, r: number) =>
      `Import finished: ${n} record${n === 1 ? '' : 's'} imported, ${a} already there, ${r} rejected.`,
    failed: 'The import stopped',
    retryHint: 'What was imported stays: start the import again and only what is missing is imported.',
    report: 'Report',
    downloadText: 'Download the report (text)',
    downloadJson: 'Download the report (JSON)',
    history: 'Earlier imports',
    none: 'No import yet.',
    file: 'File',
    records: 'Records',
    imported: 'Imported',
    already: 'Already there',
    rejected: 'Rejected',
    status: 'Status',
    started: 'Started',
    back: 'Back to the tour',
  },
};
