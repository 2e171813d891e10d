// Notification ids are UUIDs (v7, drawn at accept). An id that is not one cannot name a row:
// callers answer "not found" (or skip the record) without asking PostgreSQL, which would
// reject it with an error of its own.

export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(id: string): boolean {
  return uuidPattern.test(id);
}
