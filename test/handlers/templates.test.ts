import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { TemplateSchema, TemplateService } from "../../gen/herald/v1/template_pb.js";
import { InvalidPageTokenError } from "../../src/store/page-token.js";
import type { TemplateInput } from "../../src/store/templates.js";
import { failure, NOW, recorded, startRouterHerald, TENANT } from "../support/router.js";

// PutTemplate, GetTemplate and ListTemplates in-process (test/support/router.ts).

describe("PutTemplate", () => {
  it("compiles the content, stores it with its required variables, and answers with the stored version", async () => {
    const puts: { tenant: string; input: TemplateInput; now: Date }[] = [];
    const h = startRouterHerald({
      templates: {
        put: (tenant, input, now) => {
          puts.push({ tenant, input, now });
          return Promise.resolve(create(TemplateSchema, { ...input, version: 4, createTime: timestampFromDate(now) }));
        },
      },
    });
    const { template } = await h.client(TemplateService).putTemplate({
      templateId: "welcome",
      content: { subject: "Hi {{user.name}}", text: "{{#if vip}}Dear{{/if}} {{user.name}}, code {{code}}" },
      channelOverrides: [{ channel: Channel.SMS, content: { text: "{{code}} {{sms_only}}" } }],
      description: "first mail",
    });
    expect(puts).toHaveLength(1);
    expect(puts[0]).toMatchObject({ tenant: TENANT, now: new Date(NOW), input: { templateId: "welcome", description: "first mail" } });
    expect(puts[0]?.input.requiredVariables).toEqual(["code", "sms_only", "user.name"]);
    expect(template).toMatchObject({ templateId: "welcome", version: 4, requiredVariables: ["code", "sms_only", "user.name"] });
  });

  it("is INVALID_ARGUMENT naming the broken field, before the store is reached", async () => {
    const client = startRouterHerald().client(TemplateService);
    expect(await failure(client.putTemplate({ content: { text: "x" } }))).toEqual({ code: "InvalidArgument", message: "template_id: is required" });
    expect(await failure(client.putTemplate({ templateId: "welcome" }))).toEqual({
      code: "InvalidArgument",
      message: "content: set at least one of subject, text or html (or a channel override)",
    });
    const broken = await failure(client.putTemplate({ templateId: "welcome", content: { text: "Hi {{#if}}" } }));
    expect(broken.code).toBe("InvalidArgument");
    expect(broken.message.startsWith("content.text: does not compile: ")).toBe(true);
    expect(
      await failure(client.putTemplate({ templateId: "welcome", channelOverrides: [{ channel: Channel.SMS, content: { html: "<b>x</b>" } }] })),
    ).toEqual({ code: "InvalidArgument", message: "channel_overrides[0].content.html: only email supports html" });
  });
});

describe("GetTemplate", () => {
  const v2 = create(TemplateSchema, { templateId: "welcome", version: 2, content: { text: "Hi" } });

  it("answers with the version asked for (0 = the latest) of the caller's template", async () => {
    const get = recorded(() => v2);
    const client = startRouterHerald({ templates: { get } }).client(TemplateService);
    expect((await client.getTemplate({ templateId: "welcome" })).template).toMatchObject({ templateId: "welcome", version: 2 });
    await client.getTemplate({ templateId: "welcome", version: 2 });
    expect(get.calls).toEqual([
      [TENANT, "welcome", 0],
      [TENANT, "welcome", 2],
    ]);
  });

  it("is NOT_FOUND naming the template, or the version", async () => {
    const client = startRouterHerald({ templates: { get: () => Promise.resolve(undefined) } }).client(TemplateService);
    expect(await failure(client.getTemplate({ templateId: "welcome" }))).toEqual({ code: "NotFound", message: 'template "welcome" not found' });
    expect(await failure(client.getTemplate({ templateId: "welcome", version: 7 }))).toEqual({
      code: "NotFound",
      message: 'template "welcome" version 7 not found',
    });
  });

  it("is INVALID_ARGUMENT for a malformed id", async () => {
    const client = startRouterHerald().client(TemplateService);
    expect(await failure(client.getTemplate({ templateId: "no spaces" }))).toEqual({
      code: "InvalidArgument",
      message: "template_id: must be 1 to 128 characters of [A-Za-z0-9._-]",
    });
  });
});

describe("ListTemplates", () => {
  it("asks for the default page size when page_size is 0 and answers with the page", async () => {
    const list = recorded(() => ({ templates: [create(TemplateSchema, { templateId: "a", version: 1 })], nextPageToken: "next" }));
    const client = startRouterHerald({ templates: { list } }).client(TemplateService);
    const got = await client.listTemplates({});
    await client.listTemplates({ pageSize: 5, pageToken: "tok" });
    expect(list.calls).toEqual([
      [TENANT, { pageSize: 100, pageToken: "" }],
      [TENANT, { pageSize: 5, pageToken: "tok" }],
    ]);
    expect(got.templates.map((t) => t.templateId)).toEqual(["a"]);
    expect(got.nextPageToken).toBe("next");
  });

  it("is INVALID_ARGUMENT for a page size out of range or a token the store did not issue", async () => {
    const client = startRouterHerald({ templates: { list: () => Promise.reject(new InvalidPageTokenError()) } }).client(TemplateService);
    expect(await failure(client.listTemplates({ pageSize: 501 }))).toEqual({
      code: "InvalidArgument",
      message: "page_size: must be 0 to 500 (0 means 100), got 501",
    });
    expect(await failure(client.listTemplates({ pageToken: "forged" }))).toEqual({
      code: "InvalidArgument",
      message: "page_token: must be a next_page_token from a previous response",
    });
  });
});
