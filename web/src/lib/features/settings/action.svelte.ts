// One form's submission state: busy while the mutation runs, then its error or a notice.
import type { ApiError } from '$lib/api/errors';
import type { Result } from '$lib/api/transport';

export function createAction() {
  let busy = $state(false);
  let error = $state<ApiError | null>(null);
  let notice = $state('');
  return {
    get busy() {
      return busy;
    },
    get error() {
      return error;
    },
    get notice() {
      return notice;
    },
    /** Runs `call`; on success shows what `done` returns. */
    async run<T>(call: () => Promise<Result<T>>, done: (data: T) => string): Promise<T | undefined> {
      busy = true;
      error = null;
      notice = '';
      const r = await call();
      busy = false;
      if (r.error) {
        error = r.error;
        return undefined;
      }
      notice = done(r.data);
      return r.data;
    },
    /** The error's message for a form field, when the server named it. */
    fieldError(name: string): string | undefined {
      return error?.code === 'BAD_USER_INPUT' && error.field?.split('.').pop() === name ? error.serverMessage : undefined;
    },
  };
}
