// Cursors are opaque to clients: "h1." + the feed position in base 36. The prefix names the
// format so a later change can still read (or clearly refuse) old cursors.

const PREFIX = "h1.";
const BODY = /^[0-9a-z]{1,11}$/;

export function encodeCursor(position: number): string {
  return PREFIX + position.toString(36);
}

/** The position a cursor names, or undefined when it is not one of ours. */
export function decodeCursor(cursor: string): number | undefined {
  if (!cursor.startsWith(PREFIX)) return undefined;
  const body = cursor.slice(PREFIX.length);
  if (!BODY.test(body)) return undefined;
  const position = parseInt(body, 36);
  return Number.isSafeInteger(position) ? position : undefined;
}
