import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { BatchItemSchema, NotifyRequestSchema } from "../../gen/herald/v1/notification_service_pb.js";
import { batchCost, notifyCost } from "../../src/server/quota/metered.js";

describe("what an accept call costs", () => {
  const content = { case: "content" as const, value: { subject: "s", text: "t" } };

  it("a Notify costs the channels it considers", () => {
    expect(notifyCost(create(NotifyRequestSchema, { body: content }))).toBe(4);
    expect(notifyCost(create(NotifyRequestSchema, { body: content, channels: [Channel.EMAIL, Channel.SMS] }))).toBe(2);
    expect(notifyCost(create(NotifyRequestSchema, { channelBodies: [{ channel: Channel.PUSH, body: content }] }))).toBe(1);
    // Invalid (no body at all): still one, as it is answered.
    expect(notifyCost(create(NotifyRequestSchema, {}))).toBe(1);
  });

  it("a CreateBatch costs the sum of its items", () => {
    const items = [
      create(BatchItemSchema, { item: { case: "create", value: {} } }),
      create(BatchItemSchema, { item: { case: "schedule", value: {} } }),
      create(BatchItemSchema, { item: { case: "notify", value: { body: content, channels: [Channel.EMAIL, Channel.WEBHOOK] } } }),
      create(BatchItemSchema, {}),
    ];
    expect(batchCost(items)).toBe(5);
  });
});
