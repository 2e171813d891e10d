import { Code, ConnectError } from "@connectrpc/connect";
import {
  Channel,
  Priority,
  type Content,
  type NotificationSpec,
  type Recipient,
  type TemplateRef,
} from "../../gen/herald/v1/notification_pb.js";
import { createEgressPolicy, describeRefusal, type EgressPolicy } from "./egress.js";
import { isUuid } from "./ids.js";
import { canonicalLocale, localeRule } from "./locale.js";

// Request validation for the herald.v1 contract. Every limit lives in `limits`
// so the README and the tests quote the same numbers the server enforces.
// Errors read `<proto field path>: <rule>` and stop at the first broken rule,
// checked in field-number order.

/** Every size and count limit the API enforces. Lengths in characters are Unicode code points. */
export const limits = {
  userIdMaxChars: 256,
  emailMaxChars: 254, // RFC 5321 forward-path limit
  emailLocalPartMaxChars: 64, // RFC 5321 §4.5.3.1.1: MTAs reject longer local parts
  deviceTokenMaxChars: 4096,
  webhookUrlMaxChars: 2048,
  subjectMaxChars: 998, // RFC 5322 line length
  contentMaxBytes: 256 * 1024, // subject + text + html + data keys and values, UTF-8
  mapValueMaxBytes: 8 * 1024, // one content.data or template.variables value, UTF-8
  dataMaxEntries: 64,
  dataKeyMaxChars: 128,
  templateIdMaxChars: 128,
  variablesMaxEntries: 64,
  variableKeyMaxChars: 128,
  labelsMaxEntries: 32,
  labelKeyMaxChars: 63,
  labelValueMaxChars: 256,
  idempotencyKeyMaxChars: 128,
  timeZoneMaxChars: 64, // the longest IANA name is 32; this only bounds work on junk
} as const;

/** Echoed input is cut to this many characters so errors never carry a huge value back. */
const echoMaxChars = 40;

/** The InvalidArgument error every rule throws. */
export function invalidArgument(path: string, rule: string): ConnectError {
  return new ConnectError(`${path}: ${rule}`, Code.InvalidArgument);
}

/** A caller-supplied string made safe to put in an error message: truncated and quoted. */
export function echo(s: string): string {
  const cut = s.length > echoMaxChars ? `${s.slice(0, echoMaxChars)}…` : s;
  return JSON.stringify(cut);
}

/** Whether `s` has more than `max` code points, without copying huge strings. */
export function longerThan(s: string, max: number): boolean {
  if (s.length <= max) return false; // UTF-16 units ≥ code points
  let n = 0;
  for (const _ of s) if (++n > max) return true;
  return false;
}

const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");
// C0, DEL and C1: invisible, and they break logs and Kafka key tooling.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const controlChars = /[\u0000-\u001f\u007f-\u009f]/;
// Visible ASCII only: tokens and keys with spaces are almost always paste errors.
const visibleAscii = /^[\x21-\x7e]*$/;
// The WHATWG HTML "valid email address" rule: practical, ASCII-only, allows a
// dot-less domain (ada@localhost, handy for the dev sink). IDN domains must be punycode.
const emailPattern =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const e164 = /^\+[1-9]\d{1,14}$/;
const templateIdPattern = /^[A-Za-z0-9._-]+$/;
const variableKeyPattern = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const labelKeyPattern = /^[A-Za-z0-9._/-]+$/;

/** The address kind each channel needs, as proto field names. */
const addressFor: Record<Channel, Recipient["address"]["case"] | undefined> = {
  [Channel.UNSPECIFIED]: undefined,
  [Channel.EMAIL]: "email",
  [Channel.SMS]: "phone",
  [Channel.PUSH]: "deviceToken",
  [Channel.WEBHOOK]: "webhookUrl",
};
const protoName = { email: "email", phone: "phone", deviceToken: "device_token", webhookUrl: "webhook_url" } as const;

const mapKey = (path: string, key: string): string => `${path}[${echo(key)}]`;

/** Throws ConnectError(InvalidArgument) naming the first broken rule; returns nothing on success. */
/** Refuses every non-public webhook address: what applies when the operator allowed no range. */
/** Public addresses only: Create's webhook rule when the deployment allows nothing more. */
export const strictEgress = createEgressPolicy();

export interface SpecRules {
  /** Where webhooks may go; a literal address it refuses is INVALID_ARGUMENT. @defaultValue public addresses only */
  egress?: EgressPolicy;
}

/**
 * Returns the spec as it is to be stored: the one given, or a copy with its locale in canonical
 * form ("pt-br" → "pt-BR"), so an idempotent retry spelled otherwise is the same request.
 */
export function validateSpec(spec: NotificationSpec | undefined, path = "notification", rules: SpecRules = {}): NotificationSpec {
  if (!spec) throw invalidArgument(path, "is required");
  if (spec.channel === Channel.UNSPECIFIED) {
    throw invalidArgument(`${path}.channel`, "is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK");
  }
  if (!(spec.channel in Channel)) throw invalidArgument(`${path}.channel`, `must be a known channel, got ${spec.channel}`);
  validateRecipient(spec.recipient, spec.channel, `${path}.recipient`, rules.egress ?? strictEgress);
  validateBody(spec.body, spec.channel, path);
  validatePriority(spec.priority, `${path}.priority`);
  validateLabels(spec.labels, `${path}.labels`);
  if (spec.category !== "") validateCategoryName(spec.category, `${path}.category`);
  if (spec.locale === "") return spec;
  const locale = validateLocale(spec.locale, `${path}.locale`);
  return locale === spec.locale ? spec : { ...spec, locale };
}

/** A body for `channel`: the fields are named under `path` (`${path}.content.text`); `path` "" names them from the root. */
export function validateBody(body: NotificationSpec["body"], channel: Channel, path: string): void {
  const under = (field: string): string => (path === "" ? field : `${path}.${field}`);
  switch (body.case) {
    case "content":
      return validateContent(body.value, channel, under("content"));
    case "template":
      return validateTemplate(body.value, under("template"));
    default:
      throw invalidArgument(path === "" ? "body" : path, "body is required: set content or template");
  }
}

export function validatePriority(priority: Priority, path: string): void {
  if (!(priority in Priority)) throw invalidArgument(path, `must be a known priority, got ${priority}`);
}

/** A category's name: lower-case so "Marketing" and "marketing" cannot be two categories. */
const categoryName = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

/** The one rule for a category name, wherever one is given (a notification, preferences, a tenant's setting). */
export function validateCategoryName(name: string, path: string): void {
  if (!categoryName.test(name)) throw invalidArgument(path, `must be 1 to 64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit, got ${echo(name)}`);
}

/** A BCP 47 language tag (domain/locale.ts), returned in canonical form; throws INVALID_ARGUMENT naming `path`. */
export function validateLocale(tag: string, path: string): string {
  const locale = canonicalLocale(tag);
  if (locale === undefined) throw invalidArgument(path, `${localeRule}, got ${echo(tag)}`);
  return locale;
}

function validateRecipient(r: Recipient | undefined, channel: Channel, path: string, egress: EgressPolicy): void {
  if (!r) throw invalidArgument(path, "is required");
  validateUserId(r.userId, `${path}.user_id`);

  const want = addressFor[channel];
  const addr = r.address;
  if (want === undefined || addr.case !== want) {
    const needs = want === undefined ? "an" : `a ${protoName[want]}`;
    const got = addr.case === undefined ? "none" : protoName[addr.case];
    throw invalidArgument(path, `channel CHANNEL_${Channel[channel]} needs ${needs} address, got ${got}`);
  }
  validateAddressValue(addr.case, addr.value, `${path}.${protoName[addr.case]}`, egress);
}

/** A recipient's user id: required, at most 256 characters, no control characters (Create, recipient profiles). */
export function validateUserId(userId: string, path: string): void {
  if (userId === "") throw invalidArgument(path, "is required");
  if (longerThan(userId, limits.userIdMaxChars)) throw invalidArgument(path, `must be at most ${limits.userIdMaxChars} characters`);
  if (controlChars.test(userId)) throw invalidArgument(path, "must not contain control characters");
}

/** The address rule of each kind; `egress` undefined skips the reachability check of a webhook URL. */
export function validateAddressValue(kind: NonNullable<Recipient["address"]["case"]>, value: string, p: string, egress: EgressPolicy | undefined): void {
  if (value === "") throw invalidArgument(p, "is required");
  switch (kind) {
    case "email":
      return validateEmail(value, p);
    case "phone":
      if (!e164.test(value)) throw invalidArgument(p, "must be an E.164 number like +14155550100");
      return;
    case "deviceToken":
      if (value.length > limits.deviceTokenMaxChars) {
        throw invalidArgument(p, `must be at most ${limits.deviceTokenMaxChars} characters`);
      }
      if (!visibleAscii.test(value)) throw invalidArgument(p, "must be printable ASCII without spaces");
      return;
    case "webhookUrl":
      return validateWebhookUrl(value, p, egress);
  }
}

/**
 * A channel and a bare address (suppressions): the channel must be a deliverable one and the
 * address must pass that channel's rule, the same rules Create applies to a recipient. A webhook
 * URL is not held to the egress policy: suppressing an address nobody may reach harms no one.
 */
export function validateChannelAddress(channel: Channel, address: string, paths: { channel: string; address: string }): void {
  if (channel === Channel.UNSPECIFIED) {
    throw invalidArgument(paths.channel, "is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK");
  }
  const kind = addressFor[channel];
  if (!(channel in Channel) || kind === undefined) throw invalidArgument(paths.channel, `must be a known channel, got ${channel}`);
  validateAddressValue(kind, address, paths.address, undefined);
}

function validateEmail(email: string, path: string): void {
  if (email.length > limits.emailMaxChars) throw invalidArgument(path, `must be at most ${limits.emailMaxChars} characters`);
  if (!emailPattern.test(email)) throw invalidArgument(path, "must be an email address like ada@example.com");
  if (email.indexOf("@") > limits.emailLocalPartMaxChars) {
    throw invalidArgument(path, `the part before @ must be at most ${limits.emailLocalPartMaxChars} characters`);
  }
}

function validateWebhookUrl(raw: string, path: string, egress: EgressPolicy | undefined): void {
  if (raw.length > limits.webhookUrlMaxChars) {
    throw invalidArgument(path, `must be at most ${limits.webhookUrlMaxChars} characters`);
  }
  // The WHATWG parser silently strips surrounding spaces and inner tabs/newlines;
  // reject them so the URL we store is the URL we POST to.
  let url: URL | undefined;
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  if (!/[\u0000-\u0020\u007f]/.test(raw)) {
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw invalidArgument(path, "must be an absolute http or https URL");
  }
  // Credentials in a URL end up in logs and the database; webhooks are signed instead.
  if (url.username !== "" || url.password !== "" || /^https?:\/\/[^/?#]*@/i.test(raw)) {
    throw invalidArgument(path, "must not contain credentials (user:password@)");
  }
  // `url.hash` is "" for a bare trailing "#", so look at the raw text; a literal
  // "#" can only be the fragment delimiter.
  if (raw.includes("#")) throw invalidArgument(path, "must not contain a fragment (#...)");
  // A name is judged when the worker resolves it (it may change until then); a literal now.
  const verdict = egress?.checkHost(url.hostname);
  if (verdict && !verdict.allowed) {
    throw invalidArgument(path, `must reach a public address: ${describeRefusal(verdict)} (an operator may allow it with HERALD_WEBHOOK_ALLOW_CIDRS)`);
  }
}

function validateContent(c: Content, channel: Channel, path: string): void {
  const dataKeys = Object.keys(c.data);
  if (c.text === "" && c.html === "" && dataKeys.length === 0) {
    throw invalidArgument(path, "set at least one of text, html or data");
  }
  if (longerThan(c.subject, limits.subjectMaxChars)) {
    throw invalidArgument(`${path}.subject`, `must be at most ${limits.subjectMaxChars} characters`);
  }
  if (c.html !== "" && channel !== Channel.EMAIL) throw invalidArgument(`${path}.html`, "only email supports html");
  validateStringMap(c.data, `${path}.data`, {
    maxEntries: limits.dataMaxEntries,
    keyMaxChars: limits.dataKeyMaxChars,
  });
  let bytes = utf8Bytes(c.subject) + utf8Bytes(c.text) + utf8Bytes(c.html);
  for (const k of dataKeys) bytes += utf8Bytes(k) + utf8Bytes(c.data[k] ?? "");
  if (bytes > limits.contentMaxBytes) throw invalidArgument(path, `larger than ${limits.contentMaxBytes} bytes`);
}

function validateTemplate(t: TemplateRef, path: string): void {
  const idPath = `${path}.template_id`;
  if (t.templateId === "") throw invalidArgument(idPath, "is required");
  if (t.templateId.length > limits.templateIdMaxChars || !templateIdPattern.test(t.templateId)) {
    throw invalidArgument(idPath, `must be 1 to ${limits.templateIdMaxChars} characters of [A-Za-z0-9._-]`);
  }
  validateStringMap(t.variables, `${path}.variables`, {
    maxEntries: limits.variablesMaxEntries,
    keyMaxChars: limits.variableKeyMaxChars,
    keyPattern: [variableKeyPattern, "[A-Za-z_][A-Za-z0-9_.]*"],
  });
}

export function validateLabels(labels: Record<string, string>, path: string): void {
  validateStringMap(labels, path, {
    maxEntries: limits.labelsMaxEntries,
    keyMaxChars: limits.labelKeyMaxChars,
    keyPattern: [labelKeyPattern, "[A-Za-z0-9._/-]"],
    valueMaxChars: limits.labelValueMaxChars,
  });
}

interface MapRules {
  maxEntries: number;
  keyMaxChars: number;
  /** The pattern and how to name it in the error. */
  keyPattern?: [RegExp, string];
  /** Values are limited in characters when set, otherwise to `limits.mapValueMaxBytes`. */
  valueMaxChars?: number;
}

/** A string map of caller data (content.data's rules: 64 entries, keys 1-128 characters, values 8 KiB). */
export function validateDataMap(map: Record<string, string>, path: string): void {
  validateStringMap(map, path, { maxEntries: limits.dataMaxEntries, keyMaxChars: limits.dataKeyMaxChars });
}

function validateStringMap(map: Record<string, string>, path: string, rules: MapRules): void {
  const entries = Object.entries(map);
  if (entries.length > rules.maxEntries) throw invalidArgument(path, `must have at most ${rules.maxEntries} entries`);
  for (const [key, value] of entries) {
    const p = mapKey(path, key);
    if (key === "" || longerThan(key, rules.keyMaxChars)) {
      throw invalidArgument(p, `key must be 1 to ${rules.keyMaxChars} characters`);
    }
    if (rules.keyPattern && !rules.keyPattern[0].test(key)) {
      throw invalidArgument(p, `key must match ${rules.keyPattern[1]}`);
    }
    if (rules.valueMaxChars !== undefined) {
      if (longerThan(value, rules.valueMaxChars)) {
        throw invalidArgument(p, `value must be at most ${rules.valueMaxChars} characters`);
      }
    } else if (utf8Bytes(value) > limits.mapValueMaxBytes) {
      throw invalidArgument(p, `value must be at most ${limits.mapValueMaxBytes} bytes`);
    }
  }
}

/** The key is optional: "" means no idempotency. */
export function validateIdempotencyKey(key: string, path = "idempotency_key"): void {
  if (key.length > limits.idempotencyKeyMaxChars) {
    throw invalidArgument(path, `must be at most ${limits.idempotencyKeyMaxChars} characters`);
  }
  if (!visibleAscii.test(key)) throw invalidArgument(path, "must be printable ASCII without spaces");
}

/** Ids are UUIDs of any version; both hex cases are accepted. */
export function validateId(id: string, path = "id"): void {
  if (id === "") throw invalidArgument(path, "is required");
  if (!isUuid(id)) throw invalidArgument(path, "must be a UUID like 123e4567-e89b-12d3-a456-426614174000");
}
