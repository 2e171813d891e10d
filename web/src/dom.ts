/** A tiny element builder: text only, never HTML, so nothing from the server is parsed as markup. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** The element with this id; the page's markup is fixed, so a missing one is a bug. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} missing from index.html`);
  return node as T;
}

export const timeText = (d: Date | undefined): string => (d ? d.toLocaleTimeString(undefined, { hour12: false }) : "");

/** Date and time, for what may be days old (a dead letter). */
export const dateTimeText = (d: Date | undefined): string => (d ? d.toLocaleString(undefined, { hour12: false }) : "");
