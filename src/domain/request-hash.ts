import { createHash } from "node:crypto";
import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { NotificationSpecSchema, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import { NotifyRequestSchema, type NotifyRequest, type ScheduleRequest } from "../../gen/herald/v1/notification_service_pb.js";

// An idempotency key reused with a different request must fail, so the stored
// hash has to be equal exactly when the requests are equal field for field. Protobuf
// binary is no good for that: map entries are written in insertion order. The
// proto3 JSON form with object keys sorted is canonical: defaults are omitted
// either way and maps become objects. Enums are numbers, so renaming a value
// in the proto never changes a stored hash.

/** Bumped if the encoding below ever changes, so old and new hashes never collide by accident. */
const domain = "herald.request-hash.v1\n";

/** SHA-256 over a canonical encoding of what the caller asked for, to detect an idempotency key reused with a different request. */
export function requestHash(parts: { method: "create" | "schedule"; spec: NotificationSpec; when?: ScheduleRequest["when"] }): Buffer {
  const canonical: JsonValue = {
    method: parts.method,
    notification: toJson(NotificationSpecSchema, parts.spec, { enumAsInteger: true }),
    when: whenJson(parts.when),
  };
  return createHash("sha256").update(domain).update(stableStringify(canonical)).digest();
}

/** The same for Notify: the whole request but its key. Notify's keys are its own, so its hash never meets Create's. */
export function notifyRequestHash(req: NotifyRequest): Buffer {
  const canonical: JsonValue = {
    method: "notify",
    request: toJson(NotifyRequestSchema, { ...req, idempotencyKey: "" }, { enumAsInteger: true }),
  };
  return createHash("sha256").update(domain).update(stableStringify(canonical)).digest();
}

function whenJson(when: ScheduleRequest["when"] | undefined): JsonValue {
  switch (when?.case) {
    case "deliverAt":
      // Not toJson(Timestamp): it throws outside the valid range, and hashing
      // must not depend on validation having run first.
      return { deliverAt: { seconds: when.value.seconds.toString(), nanos: when.value.nanos } };
    case "localTime":
      return { localTime: { dateTime: when.value.dateTime, timeZone: when.value.timeZone } };
    default:
      return null;
  }
}

/** JSON with object keys in code-unit order at every level. */
function stableStringify(v: JsonValue): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(v[k] ?? null)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
