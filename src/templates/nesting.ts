// Handlebars' parser and compiler slow down steeply with nesting: 800 levels of nested
// `{{#if}}` took 2 s, 3,000 levels of `(lookup (lookup …))` 91 s and then a stack overflow.
// Real templates nest a handful of levels. This counts nesting in one linear pass over the
// source, before any parsing, so a template nested too deep is refused for the cost of reading it.

/** Deepest nesting of blocks plus sub-expressions a template may have. */
export const MAX_NESTING = 32;

/**
 * The deepest nesting in `source`: open blocks (`{{#…}}`, `{{^…}}`, closed by `{{/…}}`) plus
 * parentheses inside one mustache. An over-estimate on odd input (a `(` inside a string
 * literal counts), never an under-estimate: it bounds the work, it does not check syntax.
 */
export function nestingDepth(source: string): number {
  let blocks = 0;
  let deepest = 0;
  let i = source.indexOf("{{");
  while (i !== -1) {
    let j = i + 2;
    while (source[j] === "{" || source[j] === "~") j++;
    const sigil = source[j];
    if (sigil === "!") {
      // A comment: `{{!-- … --}}` may contain `}}`; `{{! … }}` may not.
      const long = source.startsWith("--", j + 1);
      const end = source.indexOf(long ? "--}}" : "}}", j);
      if (end === -1) break;
      i = source.indexOf("{{", end + (long ? 4 : 2));
      continue;
    }
    if (sigil === "#" || sigil === "^") blocks++;
    else if (sigil === "/") blocks = Math.max(0, blocks - 1);
    let parens = 0;
    let k = j;
    for (; k < source.length && !(source[k] === "}" && source[k + 1] === "}"); k++) {
      if (source[k] === "(") deepest = Math.max(deepest, blocks + ++parens);
      else if (source[k] === ")") parens = Math.max(0, parens - 1);
    }
    deepest = Math.max(deepest, blocks);
    i = source.indexOf("{{", k);
  }
  return deepest;
}
