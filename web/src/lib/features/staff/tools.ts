// The staff tools: who may use each, and what each one logs (support/tools.rs records
// every step in the account's access log and, as "done by support", in its activity).
import type { UserRole } from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';

export type Tool = 'resend' | 'revoke' | 'credit' | 'suspend' | 'unsuspend';

/** The access-log action each tool writes. */
export const TOOL_ACTION: Record<Tool, string> = {
  resend: 'support.resend_verification',
  revoke: 'support.revoke_sessions',
  credit: 'support.quota_credit',
  suspend: 'support.suspend',
  unsuspend: 'support.unsuspend',
};

/** Support may resend a verification link; every other tool is an administrator's. */
export function mayUse(tool: Tool, role: UserRole | undefined): boolean {
  if (role === 'ADMIN') return true;
  return role === 'SUPPORT' && tool === 'resend';
}

/** Whether the tool takes a reason (recorded with it). */
export const needsReason = (tool: Tool) => tool === 'credit' || tool === 'suspend' || tool === 'unsuspend';

/** The confirmation's sentence about the log. */
export function loggedText(tool: Tool, locale: Locale): string {
  const action = TOOL_ACTION[tool];
  const reason = needsReason(tool);
  return locale === 'fr'
    ? `« ${action} » sera inscrit dans le journal d’accès du compte et dans son activité (fait par le support), avec votre nom${reason ? ' et le motif' : ''}. L’utilisateur peut le lire.`
    : `“${action}” will be recorded in the account’s access log and in its activity (done by support), with your name${reason ? ' and the reason' : ''}. The user can read it.`;
}
