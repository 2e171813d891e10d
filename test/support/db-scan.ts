import type pg from "pg";

// "Verified by SQL over every table" (issue 16 item 7): where in the database a string still is.
// Every column of every table of the schema, found through information_schema, so a table or
// column a later migration adds is scanned without this file changing: text-like columns (text,
// jsonb, arrays, uuids, anything) through their text form, case-insensitively; bytea columns (the
// stored specs, outbox values) as bytes, since protobuf keeps a string's UTF-8 bytes as they are.

export interface Trace {
  table: string;
  column: string;
  needle: string;
}

export async function tracesOf(pool: pg.Pool, needles: readonly string[]): Promise<Trace[]> {
  const { rows: columns } = await pool.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type
     FROM information_schema.columns c
     JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
     ORDER BY c.table_name, c.ordinal_position`,
  );
  const byTable = new Map<string, Array<{ name: string; bytes: boolean }>>();
  for (const c of columns) {
    const list = byTable.get(c.table_name) ?? [];
    list.push({ name: c.column_name, bytes: c.data_type === "bytea" });
    byTable.set(c.table_name, list);
  }
  const found: Trace[] = [];
  const q = (id: string) => `"${id.replace(/"/g, '""')}"`;
  for (const [table, cols] of byTable) {
    const tests = cols.map(
      (c, i) =>
        `coalesce(bool_or(${c.bytes ? `position(p.needle_bytes IN t.${q(c.name)}) > 0` : `strpos(lower(t.${q(c.name)}::text), p.needle_text) > 0`}), false) AS c${i}`,
    );
    for (const needle of needles) {
      const { rows } = await pool.query<Record<string, boolean>>(`SELECT ${tests.join(", ")} FROM ${q(table)} t, (SELECT $1::bytea AS needle_bytes, lower($2::text) AS needle_text) p`,
        [Buffer.from(needle, "utf8"), needle],);
      cols.forEach((c, i) => {
        if (rows[0]![`c${i}`]) found.push({ table, column: c.name, needle });
      });
    }
  }
  return found;
}
