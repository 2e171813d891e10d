import { describe, expect, it } from "vitest";
import { nestingDepth } from "../../src/templates/nesting.js";

describe("nestingDepth", () => {
  it.each<[string, number]>([
    ["plain text {{name}}", 0],
    ["{{#if a}}{{#each b}}{{this}}{{/each}}{{/if}}", 2],
    ["{{#if a}}x{{else}}{{#if b}}y{{/if}}{{/if}}", 2],
    ["{{^if a}}{{/if}}{{#if b}}{{/if}}", 1],
    ["{{lookup (lookup (lookup x 'a') 'b') 'c'}}", 2],
    ["{{#with a}}{{lookup (lookup x 'a') 'b'}}{{/with}}", 2],
    ["{{!-- {{#if a}} }} {{#if b}} --}}{{#if c}}{{/if}}", 1],
    ["{{! {{#if a}} }}{{#if c}}{{/if}}", 1],
    ["{{~#if a~}}{{~/if~}}", 1],
    // Raw blocks are not understood: an over-estimate, never an under-estimate.
    ["{{{{raw}}}} {{#if x}} {{{{/raw}}}}", 1],
    ["{{/if}}{{/if}}{{#if a}}{{/if}}", 1],
    ["unclosed {{!-- comment", 0],
  ])("%j is %i deep", (source, depth) => {
    expect(nestingDepth(source)).toBe(depth);
  });
});
