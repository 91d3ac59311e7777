// The browser's second pass over HTML the server sanitized (see SafeHtml.svelte).
import DOMPurify from 'dompurify';

let hooked = false;

/** `html` with anything but plain formatting, links and images removed. */
export function sanitizeHtml(html: string): string {
  if (!hooked) {
    hooked = true;
    // Links open in a new tab without handing it this window.
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer nofollow');
      }
    });
  }
  return DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe'],
    FORBID_ATTR: ['style'],
  });
}
