// The photos of a draft: what the server accepts (checked in the browser before anything
// leaves), 20 MiB by default (`PLINTH_MAX_UPLOAD_BYTES`).
export const PHOTO_RULE = { types: ['image/jpeg', 'image/png', 'image/webp', 'image/heic'], maxBytes: 20 * 1024 * 1024 } as const;

/** The draft's photos once one is deleted (or already gone). */
export const withoutPhoto = <P extends { id: string }>(photos: readonly P[], id: string): P[] => photos.filter((p) => p.id !== id);

/** The draft's photos with a confirmed one added (once, at the end: the server's order). */
export const withPhoto = <P extends { id: string }>(photos: readonly P[], p: P): P[] => (photos.some((x) => x.id === p.id) ? [...photos] : [...photos, p]);
