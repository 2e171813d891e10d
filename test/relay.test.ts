import { randomBytes } from "node:crypto";
import type pg from "pg";
import { pino, type Logger } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createKafka, type ConsumedMessage, type Kafka, type KafkaRecord } from "../src/kafka/kafka.js";
import { OUTBOX_CHANNEL } from "../src/outbox/channel.js";
import type { RecordSink } from "../src/relay/publish.js";
import { createRelay, type Relay } from "../src/relay/relay.js";
import { createPool } from "../src/store/db.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { startPrivateBroker, type PrivateBroker } from "./support/private-broker.js";
import { endOffsets, reached } from "./support/kafka-reader.js";
import { waitFor } from "./support/wait.js";

// Each test: its own database (advisory locks are per database, so relays of other tests never
// compete) and its own topic prefix. Outbox rows are inserted by SQL, as the store would.

const SHARED_BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const TOPICS = ["herald.email", "herald.sms"];
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  // Last in, first out: relays close before their pools and Kafka clients.
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

interface Env {
  db: TestDatabase;
  kafka: Kafka;
  /** Where every partition of the test's topics ends now. */
  ends(): Promise<Map<string, bigint>>;
  /** A pool of its own, as a separate relay process would have. */
  pool(): pg.Pool;
  relay(opts: { producer?: RecordSink; pool?: pg.Pool; log?: Logger; batchSize?: number; pollMs?: number; closeTimeoutMs?: number; retentionMs?: number; housekeepingMs?: number }): Relay;
}

async function setup(brokers = SHARED_BROKERS): Promise<Env> {
  const db = await createTestDatabase("herald_relay");
  cleanups.push(() => db.drop());
  const prefix = `t${randomBytes(4).toString("hex")}.`;
  const kafka = createKafka({ brokers, clientId: "herald-test", topicPrefix: prefix, log: quiet, connectionTimeoutMs: 1000 });
  cleanups.push(() => kafka.close());
  await kafka.ensureTopics(TOPICS, { partitions: 3, retentionMs: 3_600_000 });
  const env: Env = {
    db,
    kafka,
    ends: async () => new Map([...(await endOffsets(TOPICS.map((t) => prefix + t), brokers))].map(([p, end]) => [p.slice(prefix.length), end])),
    pool() {
      const pool = createPool({ url: db.url, max: 4 });
      cleanups.push(() => pool.end());
      return pool;
    },
    relay(opts) {
      const relay = createRelay({
        pool: opts.pool ?? env.pool(),
        producer: opts.producer ?? kafka.producer(),
        log: opts.log ?? quiet,
        batchSize: opts.batchSize ?? 50,
        pollMs: opts.pollMs ?? 60_000,
        closeTimeoutMs: opts.closeTimeoutMs,
        retentionMs: opts.retentionMs,
        housekeepingMs: opts.housekeepingMs,
      });
      cleanups.push(() => relay.close());
      return relay;
    },
  };
  return env;
}

/** Row i: topic alternates, key user-(i mod 3), binary value and headers that identify it. */
function row(i: number): KafkaRecord {
  return {
    topic: TOPICS[i % 2]!,
    key: `user-${i % 3}`,
    value: Buffer.concat([Buffer.from([0, 255, 0x80]), Buffer.from(String(i))]),
    headers: { tenant: "acme", "correlation-id": `c-${i}`, attempt: "1" },
  };
}
const indexOf = (m: ConsumedMessage) => Number(m.headers["correlation-id"]!.slice(2));

/** Inserts the rows in one transaction, with the NOTIFY the store sends, and commits. */
async function insert(pool: pg.Pool, rows: KafkaRecord[], notify = true): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    for (const r of rows) {
      await client.query("INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)", [r.topic, r.key, r.value, r.headers]);
    }
    if (notify) await client.query(`NOTIFY ${OUTBOX_CHANNEL}`);
    await client.query("COMMIT");
  } finally {
    client.release();
  }
}

async function unpublished(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL");
  return Number(rows[0]!.n);
}

/** Everything on the test's topics, read from the beginning by a fresh group, as it comes. */
async function readAll(kafka: Kafka): Promise<ConsumedMessage[] & { readTo: Map<string, bigint> }> {
  const got = Object.assign([] as ConsumedMessage[], { readTo: new Map<string, bigint>() });
  const consumer = kafka.consumer({ groupId: `reader-${randomBytes(4).toString("hex")}`, topics: TOPICS, fromBeginning: true });
  cleanups.push(() => consumer.close());
  await consumer.run(async (m) => {
    got.push(m);
    got.readTo.set(`${m.topic}/${m.partition}`, BigInt(m.offset) + 1n);
  });
  return got;
}

/**
 * Reads the topics until `n` records came, then on to where each partition ends by then: a
 * copy that should not be there is on Kafka before the last record is, so it is read too.
 */
async function readPublished(env: Env, n: number): Promise<ConsumedMessage[]> {
  const got = await readAll(env.kafka);
  await waitFor(`${n} records`, () => got.length >= n);
  const ends = await env.ends();
  await waitFor("the topics read to their end", () => reached(ends, got.readTo));
  return got;
}

function expectIntact(messages: ConsumedMessage[]): void {
  for (const m of messages) {
    const want = row(indexOf(m));
    expect({ topic: m.topic, key: m.key, value: Buffer.from(m.value), headers: m.headers }).toEqual({
      topic: want.topic,
      key: want.key,
      value: want.value,
      headers: want.headers,
    });
  }
}

/** Within each partition, records appear in outbox id order (so per key too). */
function expectOrdered(messages: ConsumedMessage[]): void {
  const partitions = new Map<string, number[]>();
  for (const m of messages) {
    const p = `${m.topic}/${m.partition}`;
    partitions.set(p, [...(partitions.get(p) ?? []), indexOf(m)]);
  }
  for (const seq of partitions.values()) expect(seq).toEqual([...seq].sort((a, b) => a - b));
}

function expectEachOnce(messages: ConsumedMessage[], n: number): void {
  expect(messages.map(indexOf).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
}

/** Reads what was published (see readPublished), and checks each came once, in order. */
async function expectPublishedOnceInOrder(env: Env, n: number): Promise<ConsumedMessage[]> {
  const got = await readPublished(env, n);
  expectEachOnce(got, n);
  expectOrdered(got);
  return got;
}

function counting(sink: RecordSink, count: (n: number) => void): RecordSink {
  return {
    async sendBatch(records) {
      await sink.sendBatch(records);
      count(records.length);
    },
  };
}

/** A pino logger whose lines land in `lines`, to assert what was logged (and how often). */
function capture(): { log: Logger; lines: Array<{ msg: string; level: number }> } {
  const lines: Array<{ msg: string; level: number }> = [];
  const log = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s) as { msg: string; level: number }) });
  return { log, lines };
}

describe("relay", () => {
  it("publishes rows in id order with key, value bytes and headers intact, then marks them", async () => {
    const env = await setup();
    const pool = env.pool();
    await insert(pool, Array.from({ length: 25 }, (_, i) => row(i)), false);
    const relay = env.relay({ pool, batchSize: 10 });

    expect([await relay.runOnce(), await relay.runOnce(), await relay.runOnce(), await relay.runOnce()]).toEqual([10, 10, 5, 0]);
    expect(await unpublished(pool)).toBe(0);

    expectIntact(await expectPublishedOnceInOrder(env, 25));
  });

  it("wakes on NOTIFY: an idle relay publishes each committed row long before its next poll", async () => {
    const env = await setup();
    const pool = env.pool();
    // The poll is an hour and each wait below ends well within it, so only the NOTIFY can
    // explain a publish: a fact about which wake-up ran, not about how fast the machine is.
    env.relay({ pool, pollMs: 3_600_000 }).start();
    for (let i = 0; i <= 20; i++) {
      await insert(pool, [row(i)]);
      await waitFor(`row ${i} published`, async () => (await unpublished(pool)) === 0, { timeoutMs: 60_000 });
    }
    expectEachOnce(await readPublished(env, 21), 21);
  });

  it("finds rows committed without a NOTIFY on its poll", async () => {
    const env = await setup();
    const pool = env.pool();
    env.relay({ pool, pollMs: 100 }).start();
    await insert(pool, [row(0), row(1)], false);
    await waitFor("both rows published", async () => (await unpublished(pool)) === 0);
  });

  it("with two relays running, only the leader publishes; each row once, in order; the other takes over on close", async () => {
    const env = await setup();
    const sent = [0, 0];
    const relays = [0, 1].map((i) =>
      env.relay({ producer: counting(env.kafka.producer(), (n) => (sent[i]! += n)), batchSize: 7, pollMs: 200 }),
    );
    relays.forEach((r) => r.start());
    const pool = env.pool();
    for (let t = 0; t < 6; t++) {
      await insert(pool, Array.from({ length: 10 }, (_, i) => row(t * 10 + i)));
      await new Promise((r) => setTimeout(r, 15));
    }
    await waitFor("every row published", async () => (await unpublished(pool)) === 0);
    expect([...sent].sort((a, b) => a - b)).toEqual([0, 60]);

    const leader = sent[0] === 60 ? 0 : 1;
    await relays[leader]!.close();
    await insert(pool, Array.from({ length: 10 }, (_, i) => row(60 + i)));
    await waitFor("the follower to publish", async () => (await unpublished(pool)) === 0);
    expect(sent[1 - leader]).toBe(10);

    const got = await readPublished(env, 70);
    expectEachOnce(got, 70);
    expectOrdered(got);
  });

  it("pipelines a backlog: marks batch N-1 while N is with Kafka, each batch only after its ack; all once, in order", async () => {
    const env = await setup();
    const pool = env.pool();
    await insert(pool, Array.from({ length: 45 }, (_, i) => row(i)), false);
    // The relay's own pool, its sessions' statements logged in the order they were issued.
    const relayPool = env.pool();
    const events: string[] = [];
    const connect = relayPool.connect.bind(relayPool) as () => Promise<pg.PoolClient>;
    relayPool.connect = (async () => {
      const client = await connect();
      const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
      client.query = ((...args: unknown[]) => {
        const [text, values] = args as [string, unknown[] | undefined];
        if (text.startsWith("UPDATE outbox SET published_at")) events.push(`mark ${(values![0] as string[]).length}`);
        return query(...args);
      }) as typeof client.query;
      return client;
    }) as typeof relayPool.connect;
    const real = env.kafka.producer();
    let batch = 0;
    const slow: RecordSink = {
      async sendBatch(records) {
        const n = ++batch;
        events.push(`send ${n} (${records.length})`);
        await new Promise((r) => setTimeout(r, 100)); // a Kafka round trip long enough to overlap
        await real.sendBatch(records);
        events.push(`acked ${n}`);
      },
    };
    env.relay({ pool: relayPool, producer: slow, batchSize: 10 }).start();
    await waitFor("every row published", async () => (await unpublished(pool)) === 0);

    // Each batch's mark is issued after its own ack, while the next batch is already sending.
    expect(events).toEqual([
      "send 1 (10)",
      "acked 1",
      "send 2 (10)",
      "mark 10",
      "acked 2",
      "send 3 (10)",
      "mark 10",
      "acked 3",
      "send 4 (10)",
      "mark 10",
      "acked 4",
      "send 5 (5)",
      "mark 10",
      "acked 5",
      "mark 5",
    ]);
    expectIntact(await expectPublishedOnceInOrder(env, 45));
  });

  it("a publish failing mid-backlog drops the batch prepared beside it; everything still goes out once, in order", async () => {
    const env = await setup();
    const pool = env.pool();
    await insert(pool, Array.from({ length: 45 }, (_, i) => row(i)), false);
    const real = env.kafka.producer();
    let batch = 0;
    const failsOnce: RecordSink = {
      async sendBatch(records) {
        if (++batch === 3) throw new Error("broker said no"); // nothing of this batch reached Kafka
        await real.sendBatch(records);
      },
    };
    env.relay({ pool, producer: failsOnce, batchSize: 10, pollMs: 100 }).start();
    await waitFor("every row published", async () => (await unpublished(pool)) === 0);
    expect(batch).toBe(6); // five batches and the failed one
    await expectPublishedOnceInOrder(env, 45);
  });

  it("republishes a batch whose relay died between publish and mark; nothing is lost", async () => {
    const env = await setup();
    const real = env.kafka.producer();
    let publishedOnce = () => {};
    const published = new Promise<void>((resolve) => (publishedOnce = resolve));
    // On Kafka, acknowledged, and then this relay never gets to mark: a process dying right there.
    const diesAfterPublish: RecordSink = {
      async sendBatch(records) {
        await real.sendBatch(records);
        publishedOnce();
        return new Promise<void>(() => {});
      },
    };
    const poolA = env.pool();
    const doomed = env.relay({ pool: poolA, producer: diesAfterPublish, closeTimeoutMs: 300, pollMs: 100 });
    doomed.start();
    const pool = env.pool();
    await insert(pool, [row(0)]);
    await published;
    expect(await unpublished(pool)).toBe(1);

    // Its database session goes away as a dead process' would, and with it the advisory lock.
    const { rowCount } = await pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(rowCount).toBe(1);
    // Bounded although its batch never finishes: close() returns (after closeTimeoutMs).
    let closed = false;
    void doomed.close().then(() => (closed = true));
    await waitFor("close() to return with its batch still unfinished", () => closed);

    env.relay({ pollMs: 100 }).start();
    await insert(pool, [row(1)]);
    await waitFor("every row published", async () => (await unpublished(pool)) === 0);

    const got = await readAll(env.kafka);
    await waitFor("row 0 twice and row 1", () => got.filter((m) => indexOf(m) === 0).length >= 2 && got.some((m) => indexOf(m) === 1));
    expect(got.filter((m) => indexOf(m) === 0).length).toBeGreaterThanOrEqual(2);
    expect(got.filter((m) => indexOf(m) === 1)).toHaveLength(1);
    expectIntact(got);
  });

  it("deletes published rows past retention, in small batches, and nothing else", async () => {
    const env = await setup();
    const pool = env.pool();
    await insert(pool, Array.from({ length: 6 }, (_, i) => row(i)), false);
    await pool.query(`UPDATE outbox SET published_at = now() - interval '2 hours' WHERE id <= 3`);
    await pool.query(`UPDATE outbox SET published_at = now() - interval '10 minutes' WHERE id = 4`);
    env.relay({ pool, pollMs: 50, retentionMs: 3_600_000, housekeepingMs: 50 }).start();
    await waitFor("only the rows within retention left", async () => {
      const { rows } = await pool.query<{ id: string }>("SELECT id FROM outbox ORDER BY id");
      return rows.map((r) => Number(r.id)).join() === "4,5,6";
    });
    expect(await unpublished(pool)).toBe(0); // rows 5 and 6 were published, not deleted
  });

  it("close() is bounded when the database is unreachable", async () => {
    const pool = createPool({ url: "postgres://postgres@127.0.0.1:1/nowhere", connectTimeoutMs: 500 });
    cleanups.push(() => pool.end());
    let tries = 0;
    // Counted as pg's pool.query reaches it too (with a callback), so every argument passes through.
    const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
    pool.connect = ((...args: unknown[]) => (tries++, connect(...args))) as typeof pool.connect;
    const relay = createRelay({ pool, producer: { sendBatch: async () => {} }, log: quiet, batchSize: 10, pollMs: 100, closeTimeoutMs: 1000 });
    relay.start();
    await waitFor("the relay to try the database", () => tries > 0);
    // Bounded: close() returns (the test's own timeout is what would catch a hang).
    let closed = false;
    void relay.close().then(() => (closed = true));
    await waitFor("close() to return", () => closed);
    await relay.close(); // idempotent
  });
});

describe("relay while Kafka is down (private broker)", () => {
  let broker: PrivateBroker;
  beforeAll(async () => {
    broker = await startPrivateBroker();
  });
  afterAll(async () => {
    await broker?.destroy();
  });

  it("keeps running and marks nothing; when Kafka returns, the backlog drains, each row exactly once", async () => {
    const env = await setup(broker.brokers);
    const pool = env.pool();
    const { log, lines } = capture();
    const real = env.kafka.producer();
    let failures = 0;
    const counted: RecordSink = {
      sendBatch: (records) => real.sendBatch(records).catch((err: unknown) => {
        failures++;
        throw err;
      }),
    };
    env.relay({ log, producer: counted, pollMs: 200 }).start();
    await insert(pool, [row(0), row(1)]);
    await waitFor("every row published", async () => (await unpublished(pool)) === 0);

    await broker.stop();
    for (let t = 0; t < 4; t++) await insert(pool, Array.from({ length: 5 }, (_, i) => row(2 + t * 5 + i)));
    // It has tried, backed off and tried again, and marked nothing.
    await waitFor("two failed publishes", () => failures >= 2, { timeoutMs: 60_000 });
    expect(await unpublished(pool)).toBe(20);
    // Still the leader, still trying: its session holds the lock.
    const { rowCount } = await pool.query(
      "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    expect(rowCount).toBe(1);

    await broker.start();
    await waitFor("the backlog drained", async () => (await unpublished(pool)) === 0, { timeoutMs: 60_000 });

    const got = await readPublished(env, 22);
    expectEachOnce(got, 22);
    expectOrdered(got);
    expectIntact(got);
    // One line when Kafka went away and one when it came back, not one per retry.
    expect(lines.filter((l) => l.msg === "kafka unavailable; relay backing off")).toHaveLength(1);
    expect(lines.filter((l) => l.msg === "relay publishing again")).toHaveLength(1);
  }, 120_000);
});
