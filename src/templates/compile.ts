import Handlebars from "handlebars";
import { echo, limits } from "../domain/validate.js";
import { MAX_NESTING, nestingDepth } from "./nesting.js";

// Templates are Handlebars with only the built-in helpers. Everything that can
// be known about a template is checked here, once, at PutTemplate: a template
// that stores compiles, calls no helper it cannot have, and prints only
// variables a notification can supply. Delivery then fails only for reasons
// that belong to one notification (a missing variable, an oversized result).

/** The content fields a template has; `html` escapes what it prints, the others do not. */
export type TemplateField = "subject" | "text" | "html";
export const templateFields: readonly TemplateField[] = ["subject", "text", "html"];

/** An isolated Handlebars environment (its own helpers and partials). */
export type TemplateEngine = typeof Handlebars;
type CompileOptions = NonNullable<Parameters<TemplateEngine["compile"]>[1]>;
type AST = hbs.AST.Node;

/** Helpers a template may call: the number of arguments each takes, and whether it needs a block. */
const helpers: ReadonlyMap<string, { arity: number; block: boolean }> = new Map([
  ["if", { arity: 1, block: true }],
  ["unless", { arity: 1, block: true }],
  ["each", { arity: 1, block: true }],
  ["with", { arity: 1, block: true }],
  ["lookup", { arity: 2, block: false }],
]);

/** A variable name a notification can send: TemplateRef.variables keys (validate.ts). */
const variableName = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** Thrown for a template that does not parse or compile; the message is short and names the place. */
export class TemplateSyntaxError extends Error {
  override name = "TemplateSyntaxError";
}

/** A fresh environment whose only helpers are if, unless, each, with and lookup. */
export function createEngine(): TemplateEngine {
  const engine = Handlebars.create();
  // `log` writes to the process console: not something a tenant's template may reach.
  engine.unregisterHelper("log");
  return engine;
}

/**
 * Compile options for one field. `knownHelpersOnly` turns a call of any other
 * helper into a compile error instead of a delivery-time one. Prototype access
 * stays at Handlebars' default (denied).
 */
export function compileOptions(field: TemplateField): CompileOptions {
  return {
    knownHelpersOnly: true,
    knownHelpers: { log: false, helperMissing: false, blockHelperMissing: false },
    noEscape: field !== "html",
  };
}

/**
 * Parses and compiles one field's source and returns the variables it prints
 * outside any block (sorted, unique): those are required. Throws
 * TemplateSyntaxError.
 */
export function analyzeSource(engine: TemplateEngine, source: string, field: TemplateField): string[] {
  // Before parsing: the parser's cost grows steeply with nesting (nesting.ts).
  const depth = nestingDepth(source);
  if (depth > MAX_NESTING) {
    throw new TemplateSyntaxError(`nested ${depth} levels deep; at most ${MAX_NESTING} levels of blocks and sub-expressions together`);
  }
  let program: hbs.AST.Program;
  try {
    program = engine.parse(source);
  } catch (err) {
    throw new TemplateSyntaxError(shortMessage(err));
  }
  const required = new Set<string>();
  walk(program, true, required);
  try {
    // Compiling the source (not the AST: Handlebars warns against compiling
    // ASTs) finds what parsing does not, e.g. an unknown helper.
    engine.precompile(source, compileOptions(field));
  } catch (err) {
    throw new TemplateSyntaxError(shortMessage(err));
  }
  return [...required].sort();
}

/**
 * Collects printed variables; `top` is false inside a block, where what is
 * printed depends on a condition or an iteration and so is optional. A block's
 * own parameters (`x` in `{{#if x}}`) are optional too: the block handles absence.
 */
function walk(node: AST, top: boolean, required: Set<string>): void {
  switch (node.type) {
    case "Program":
      for (const s of (node as hbs.AST.Program).body) walk(s, top, required);
      return;
    case "MustacheStatement": {
      const m = node as hbs.AST.MustacheStatement;
      checkCall(m.path, m.params, false);
      m.params.forEach((p) => walk(p, false, required));
      m.hash?.pairs.forEach((p) => walk(p.value, false, required));
      const name = m.params.length === 0 && !m.hash ? printedVariable(m.path) : undefined;
      if (top && name !== undefined) required.add(name);
      return;
    }
    case "SubExpression": {
      const s = node as hbs.AST.SubExpression;
      checkCall(s.path, s.params, false);
      s.params.forEach((p) => walk(p, false, required));
      s.hash?.pairs.forEach((p) => walk(p.value, false, required));
      return;
    }
    case "BlockStatement": {
      const b = node as hbs.AST.BlockStatement;
      checkCall(b.path, b.params, true);
      b.params.forEach((p) => walk(p, false, required));
      if (b.program) walk(b.program, false, required);
      if (b.inverse) walk(b.inverse, false, required);
      return;
    }
    case "PartialStatement":
    case "PartialBlockStatement":
      throw new TemplateSyntaxError(`partials ({{> name}}) are not supported${at(node)}`);
    case "Decorator":
    case "DecoratorBlock":
      throw new TemplateSyntaxError(`decorators ({{* name}}) are not supported${at(node)}`);
    default:
      // Content, comments, literals and paths used as arguments.
      return;
  }
}

/**
 * Built-in helpers misused (wrong argument count, `{{if x}}` without a block)
 * compile fine and throw at render time, for every notification: catch it now.
 */
function checkCall(path: hbs.AST.Node, params: hbs.AST.Expression[], asBlock: boolean): void {
  if (path.type !== "PathExpression") return;
  const name = (path as hbs.AST.PathExpression).original;
  const helper = helpers.get(name);
  if (!helper) return;
  if (helper.block && !asBlock) {
    throw new TemplateSyntaxError(`${name} needs a block: {{#${name} ...}}...{{/${name}}}${at(path)}`);
  }
  if (params.length !== helper.arity) {
    const args = helper.arity === 1 ? "one argument" : `${helper.arity} arguments`;
    throw new TemplateSyntaxError(`${name} takes exactly ${args}, got ${params.length}${at(path)}`);
  }
}

/**
 * The variable a mustache prints, as a dotted name (`{{user.name}}` →
 * "user.name"), or undefined for what is not a caller's variable: literals,
 * `this`, `@index` and other data, `../` paths. (Helper names never get here:
 * checkCall refuses a bare `{{if}}` or `{{lookup}}`.)
 */
function printedVariable(node: hbs.AST.Node): string | undefined {
  if (node.type !== "PathExpression") return undefined;
  const p = node as hbs.AST.PathExpression;
  if (p.depth > 0) return undefined;
  let parts = p.parts;
  if (p.data) {
    if (parts[0] !== "root") return undefined;
    parts = parts.slice(1); // {{@root.name}} is the top-level name
  }
  if (parts.length === 0) return undefined;
  const name = parts.join(".");
  // `{{[first name]}}` or `{{[a.b]}}` would be required yet impossible to send.
  if (parts.some((s) => s === "" || s.includes(".")) || !variableName.test(name) || name.length > limits.variableKeyMaxChars) {
    throw new TemplateSyntaxError(
      `variable ${echo(name)} can never be supplied: variable names are 1 to ${limits.variableKeyMaxChars} characters of [A-Za-z_][A-Za-z0-9_.]*${at(node)}`,
    );
  }
  return name;
}

/** " at line L, column C" for a node (1-based, as editors count). */
function at(node: AST): string {
  return node.loc ? ` at line ${node.loc.start.line}, column ${node.loc.start.column + 1}` : "";
}

const messageMaxChars = 200;

/**
 * Handlebars' messages quote the source with a caret line under it; keep the
 * first line and the token the parser choked on, and cap the length.
 */
export function shortMessage(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  const lines = raw.split("\n");
  let msg = (lines[0] ?? "")
    .replace(/:$/, "")
    .replace(/^You specified knownHelpersOnly, but used the unknown helper (\S+)/, "unknown helper $1 (only if, unless, each, with and lookup exist)");
  const got = /got '([^']+)'\s*$/.exec(raw);
  if (got) msg += `: unexpected ${got[1] === "EOF" ? "end of template" : got[1]}`;
  // Compiler errors end " - line:column" (0-based column).
  const loc = / - (\d+):(\d+)$/.exec(msg);
  if (loc) msg = `${msg.slice(0, loc.index)} at line ${loc[1]}, column ${Number(loc[2]) + 1}`;
  return msg.length > messageMaxChars ? `${msg.slice(0, messageMaxChars)}…` : msg;
}
