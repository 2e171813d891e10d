import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import {
  TemplateSchema,
  type ChannelContent,
  type LocaleContent,
  type Template,
  type TemplateContent,
} from "../../gen/herald/v1/template_pb.js";
import { inTransaction } from "./db.js";
import { withStoreErrors } from "./errors.js";
import { pageTokenCodec, textField } from "./page-token.js";
import { limits } from "../domain/validate.js";

// Versioned templates, one row per (tenant, template_id, version); the body is
// the whole herald.v1.Template as protobuf. Versions are immutable, so readers
// may cache a version forever; only "the latest" moves.

/** A validated PutTemplate: what the new version holds. */
export interface TemplateInput {
  templateId: string;
  content?: TemplateContent;
  channelOverrides: ChannelContent[];
  description: string;
  /** Computed by the caller from the content (templates/compile.ts). */
  requiredVariables: string[];
  /** Locale variants, canonical and distinct, each with its own required variables. */
  locales: LocaleContent[];
}

export interface TemplatePage {
  /** The latest version of each template, ordered by id. */
  templates: Template[];
  /** "" on the last page. */
  nextPageToken: string;
}

export interface TemplateStore {
  /** Stores the next version of `input.templateId` (1 for a new id) and returns it. */
  put(tenant: string, input: TemplateInput, now: Date): Promise<Template>;
  /** One version; 0 means the latest. Undefined when there is no such template or version. */
  get(tenant: string, templateId: string, version: number): Promise<Template | undefined>;
  /** Throws InvalidPageTokenError (page-token.ts) for a token it did not issue. */
  list(tenant: string, page: { pageSize: number; pageToken: string }): Promise<TemplatePage>;
}

// pg_advisory_xact_lock(int4, int4): the two-key space never overlaps the
// single-bigint keys the migrator and the relay lock.
const PUT_LOCK_CLASS = 0x7e4d; // "templates"
const maxStoredVersion = 2 ** 31 - 1; // the column is integer; GetTemplate takes a uint32

/** A page token is the last template id of the page; ids are 1 to 128 characters (domain/validate.ts). */
const pageTokens = pageTokenCodec({ after: textField(limits.templateIdMaxChars) });

export function createTemplateStore(deps: { pool: pg.Pool }): TemplateStore {
  const { pool } = deps;
  return {
    put(tenant, input, now) {
      return withStoreErrors(() =>
        inTransaction(pool, async (client) => {
          // Two puts of one id at once must get distinct versions. The lock
          // makes the second wait for the first's commit, then read its max;
          // (tenant, id) hashing onto another pair only serializes more.
          await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [
            PUT_LOCK_CLASS,
            JSON.stringify([tenant, input.templateId]),
          ]);
          const max = await client.query<{ version: number | null }>(
            "SELECT max(version) AS version FROM templates WHERE tenant = $1 AND template_id = $2",
            [tenant, input.templateId],
          );
          const template = create(TemplateSchema, {
            templateId: input.templateId,
            version: (max.rows[0]?.version ?? 0) + 1,
            content: input.content,
            channelOverrides: input.channelOverrides,
            requiredVariables: input.requiredVariables,
            createTime: timestampFromDate(now),
            description: input.description,
            locales: input.locales,
          });
          await client.query(
            "INSERT INTO templates (tenant, template_id, version, body, created_at) VALUES ($1, $2, $3, $4, $5)",
            [tenant, template.templateId, template.version, Buffer.from(toBinary(TemplateSchema, template)), now],
          );
          return template;
        }),
      );
    },

    async get(tenant, templateId, version) {
      if (version > maxStoredVersion) return undefined;
      // Both forms are one primary-key index probe (the latest: backwards, LIMIT 1).
      const found = await withStoreErrors(() =>
        version === 0
          ? pool.query<{ body: Buffer }>(
              "SELECT body FROM templates WHERE tenant = $1 AND template_id = $2 ORDER BY version DESC LIMIT 1",
              [tenant, templateId],
            )
          : pool.query<{ body: Buffer }>(
              "SELECT body FROM templates WHERE tenant = $1 AND template_id = $2 AND version = $3",
              [tenant, templateId, version],
            ),
      );
      const row = found.rows[0];
      return row ? fromBinary(TemplateSchema, row.body) : undefined;
    },

    async list(tenant, page) {
      // "" sorts before every id: the first page.
      const after = pageTokens.decode(page.pageToken)?.after ?? "";
      // Keyset paging on the id; "latest" is the row with no higher version.
      // Walks the primary key in id order and stops after one row past the page.
      const found = await withStoreErrors(() =>
        pool.query<{ template_id: string; body: Buffer }>(
          `SELECT t.template_id, t.body FROM templates t
           WHERE t.tenant = $1 AND t.template_id > $2
             AND NOT EXISTS (SELECT 1 FROM templates n
                             WHERE n.tenant = t.tenant AND n.template_id = t.template_id AND n.version > t.version)
           ORDER BY t.template_id
           LIMIT $3`,
          [tenant, after, page.pageSize + 1],
        ),
      );
      const rows = found.rows.slice(0, page.pageSize);
      const more = found.rows.length > page.pageSize;
      const last = rows[rows.length - 1];
      return {
        templates: rows.map((r) => fromBinary(TemplateSchema, r.body)),
        nextPageToken: more && last ? pageTokens.encode({ after: last.template_id }) : "",
      };
    },
  };
}
