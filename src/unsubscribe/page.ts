// The pages a person sees at an unsubscribe link: plain HTML, no script, no style sheet, nothing
// fetched, and a form that works without cookies or JavaScript (RFC 8058 §3.2 asks the same of the
// POST). Text only from us: the category name is the one value of the link shown, escaped.

const escapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (s: string) => s.replace(/[&<>"']/g, (c) => escapes[c]!);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>${escape(title)}</title></head>
<body>
<h1>${escape(title)}</h1>
${body}
</body>
</html>
`;
}

/**
 * GET: asks, and unsubscribes nobody. Mail scanners and link previews fetch every link in a
 * message; only the POST this form sends (or a mailbox provider's one-click POST) changes anything.
 */
export function confirmPage(category: string, action: string): string {
  return page(
    "Unsubscribe",
    `<p>Stop receiving <strong>${escape(category)}</strong> messages?</p>
<form method="post" action="${escape(action)}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>`,
  );
}

export function donePage(category: string): string {
  return page("Unsubscribed", `<p>You will no longer receive <strong>${escape(category)}</strong> messages.</p>`);
}

export function requiredPage(category: string): string {
  return page("Cannot unsubscribe", `<p><strong>${escape(category)}</strong> messages are required for your account and cannot be turned off here.</p>`);
}

export function invalidPage(): string {
  return page("Link not valid", "<p>This unsubscribe link is not valid. Use the link in the message exactly as it was sent.</p>");
}

export function failedPage(): string {
  return page("Try again", "<p>Your request could not be saved just now. Please try again in a few minutes.</p>");
}
