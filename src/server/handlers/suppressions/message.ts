import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SuppressionReason, SuppressionSchema, type Suppression as SuppressionMessage } from "../../../../gen/herald/v1/suppression_pb.js";
import type { Suppression, SuppressionReason as StoredReason } from "../../../store/suppressions.js";

/** The stored reason (migration 008's text) as the contract's enum. */
export const reasons: Record<StoredReason, SuppressionReason> = {
  hard_bounce: SuppressionReason.HARD_BOUNCE,
  complaint: SuppressionReason.COMPLAINT,
  manual: SuppressionReason.MANUAL,
};

/** A stored suppression as herald.v1.Suppression (the tenant stays out: it is the caller's own). */
export function toSuppressionMessage(s: Suppression): SuppressionMessage {
  return create(SuppressionSchema, {
    channel: s.channel,
    address: s.address,
    reason: reasons[s.reason] ?? SuppressionReason.UNSPECIFIED,
    detail: s.detail,
    notificationId: s.notificationId ?? "",
    createTime: s.createdAt ? timestampFromDate(s.createdAt) : undefined,
  });
}
