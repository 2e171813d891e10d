import { Kafka, logLevel } from "kafkajs";
import type pg from "pg";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient } from "../../src/client/index.js";
import type { Figure, Scenario } from "../lib/result.js";
import { startStack, type Stack } from "../lib/stack.js";

// What one notification costs the stores, from Create to SENT (issue 17, the capacity model):
// rows PostgreSQL inserts, updates and deletes, by table, the WAL it writes, and the records
// Kafka takes. These do not depend on the machine's speed, so they size a PostgreSQL primary and
// a Kafka cluster for a target rate (docs/capacity.md) where CPU figures need an idle machine.

const KAFKA_BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
/** PostgreSQL flushes an idle backend's statistics after 10 s (PGSTAT_IDLE_INTERVAL): wait longer than that for them to settle. */
const STATS_SETTLE_MS = 11_000;

interface TableWrites {
  table: string;
  ins: number;
  upd: number;
  hot: number;
  del: number;
}

export const run: Scenario = async (ctx) => {
  const total = ctx.quick ? 1000 : 5000;
  const stack = await startStack({ name: `writes${ctx.runId}`, roles: ["server", "relay", "scheduler", "worker:sms"] });
  const client = createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey });
  const kafka = new Kafka({ brokers: KAFKA_BROKERS, clientId: "herald-bench", logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const figures: Figure[] = [];
  try {
    ctx.progress.step("waiting for PostgreSQL's statistics to settle");
    const before = await settled(stack.pool);
    const walBefore = await walLsn(stack.pool);
    const recordsBefore = await kafkaRecords(admin, stack.env.HERALD_TOPIC_PREFIX!);

    ctx.progress.step(`${total} Creates, 32 in flight`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < total) {
          const i = next++;
          await client.create({
            notification: {
              channel: Channel.SMS,
              recipient: { userId: `user-${i % 500}`, address: { case: "phone", value: "+14155550100" } },
              body: { case: "content", value: { text: `Your code is ${100_000 + i}` } },
            },
          });
        }
      }),
    );
    ctx.progress.step("waiting for every notification to be SENT and published");
    await until(stack, async () => {
      const { rows } = await stack.pool.query<{ sent: number; unpublished: number }>(
        `SELECT (SELECT count(*)::int FROM notifications WHERE status = $1) AS sent,
                (SELECT count(*)::int FROM outbox WHERE published_at IS NULL) AS unpublished`,
        [Status.SENT],
      );
      return rows[0]!.sent === total && rows[0]!.unpublished === 0;
    });
    const walBytes = await walLsn(stack.pool).then((after) => after - walBefore);
    const recordsAfter = await kafkaRecords(admin, stack.env.HERALD_TOPIC_PREFIX!);
    ctx.progress.step("waiting for PostgreSQL's statistics to settle");
    const after = await settled(stack.pool);

    const per = (n: number) => Math.round((100 * n) / total) / 100;
    let rows = 0;
    for (const t of after) {
      const b = before.find((x) => x.table === t.table) ?? { ins: 0, upd: 0, hot: 0, del: 0 };
      const d = { ins: t.ins - b.ins, upd: t.upd - b.upd, hot: t.hot - b.hot, del: t.del - b.del };
      if (d.ins + d.upd + d.del === 0) continue;
      rows += d.ins + d.upd + d.del;
      figures.push({
        name: `PostgreSQL ${t.table}`,
        extra: { "inserted / notification": per(d.ins), "updated / notification": per(d.upd), "of which HOT": per(d.hot), "deleted / notification": per(d.del) },
      });
    }
    figures.push({ name: "PostgreSQL, every table", extra: { "rows written / notification": per(rows), "WAL bytes / notification": Math.round(walBytes / total) } });
    for (const [topic, n] of recordsAfter) {
      const d = n - (recordsBefore.get(topic) ?? 0);
      if (d > 0) figures.push({ name: `Kafka ${topic.slice(stack.env.HERALD_TOPIC_PREFIX!.length)}`, extra: { "records / notification": per(d) } });
    }
  } finally {
    client.close();
    await admin.disconnect();
    await stack.stop();
  }
  return {
    id: "writes",
    title: "Writes per notification: PostgreSQL rows and WAL, Kafka records",
    command: `npm run bench -- --only writes${ctx.quick ? " --quick" : ""}`,
    method:
      `Server, relay, scheduler and an SMS worker (local sink) as processes on their own database and topics; ${total} SMS Creates (32 in flight), ` +
      `until every one is SENT and the outbox is empty. Rows from pg_stat_user_tables (read once the statistics settled: ${STATS_SETTLE_MS / 1000} s without change), ` +
      `WAL from pg_current_wal_lsn(), records from the topics' end offsets, each as the difference over the run divided by the notifications.`,
    figures,
    notes: [
      "WAL is the whole PostgreSQL server's: exact only when nothing else writes to it during the run (run the bench on an idle machine).",
      "Updates marked HOT rewrote no index entry. Deleted rows are the relay's housekeeping of published outbox rows, when it ran during the run (it runs every minute).",
    ],
  };
};

async function tableWrites(pool: pg.Pool): Promise<TableWrites[]> {
  const { rows } = await pool.query<{ table: string; ins: string; upd: string; hot: string; del: string }>(
    "SELECT relname AS table, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot, n_tup_del AS del FROM pg_stat_user_tables ORDER BY relname",
  );
  return rows.map((r) => ({ table: r.table, ins: Number(r.ins), upd: Number(r.upd), hot: Number(r.hot), del: Number(r.del) }));
}

/** The table counters once they stopped changing for STATS_SETTLE_MS. */
async function settled(pool: pg.Pool): Promise<TableWrites[]> {
  let last = JSON.stringify(await tableWrites(pool));
  let since = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await tableWrites(pool);
    const text = JSON.stringify(now);
    if (text !== last) {
      last = text;
      since = performance.now();
    } else if (performance.now() - since >= STATS_SETTLE_MS) {
      return now;
    }
  }
}

async function walLsn(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ b: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b");
  return Number(rows[0]!.b);
}

/** Records on each of the stack's topics (sum of the partitions' end offsets). */
async function kafkaRecords(admin: ReturnType<Kafka["admin"]>, prefix: string): Promise<Map<string, number>> {
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
  const out = new Map<string, number>();
  for (const topic of topics) {
    const offsets = await admin.fetchTopicOffsets(topic);
    out.set(topic, offsets.reduce((sum, p) => sum + Number(p.high), 0));
  }
  return out;
}

async function until(stack: Stack, done: () => Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await done())) {
    if (performance.now() > deadline) throw new Error(`not every notification SENT and published within ${timeoutMs} ms (database ${stack.databaseUrl})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
