// The unread count behind the bell, kept live by `notificationAdded`.
import { api, fetchOnce } from '$lib/api/app.svelte';
import { NotificationAddedDocument, NotificationsDocument, type NotificationFieldsFragment } from '$lib/gql/graphql';

export const inbox = $state({ unread: 0, latest: [] as NotificationFieldsFragment[] });

/** Starts following notifications; returns the stopper. */
export function followNotifications(): () => void {
  void fetchOnce(NotificationsDocument, { unreadOnly: true }).then((r) => {
    if (r.data) inbox.unread = r.data.notifications.length;
  });
  const sub = api()
    .client.subscription(NotificationAddedDocument, {})
    .subscribe((r) => {
      const n = r.data?.notificationAdded;
      if (n && !inbox.latest.some((x) => x.id === n.id)) {
        inbox.latest = [n, ...inbox.latest].slice(0, 20);
        if (!n.readAt) inbox.unread += 1;
      }
    });
  return () => sub.unsubscribe();
}
