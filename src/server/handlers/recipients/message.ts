import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RecipientProfileSchema, type RecipientProfile } from "../../../../gen/herald/v1/recipient_pb.js";
import type { RecipientProfileRow } from "../../../store/recipients.js";

/** A stored profile as herald.v1.RecipientProfile (the tenant stays out: it is the caller's own). */
export function toProfileMessage(p: RecipientProfileRow): RecipientProfile {
  return create(RecipientProfileSchema, {
    userId: p.userId,
    email: p.email,
    phone: p.phone,
    pushTokens: p.pushTokens,
    webhookUrl: p.webhookUrl,
    timeZone: p.timeZone,
    locale: p.locale,
    data: p.data,
    createTime: timestampFromDate(p.createdAt),
    updateTime: timestampFromDate(p.updatedAt),
  });
}
