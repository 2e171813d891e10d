// The page's views (live feed, operations, dead letters, recipients), one
// shown at a time, chosen by the URL's fragment so a view can be linked and
// reloaded: /#operations, /#dead-letters, /#recipients; anything else is the
// live view.

export const VIEWS = ["live", "operations", "dead-letters", "recipients"] as const;
export type ViewName = (typeof VIEWS)[number];

export const viewOf = (hash: string): ViewName => VIEWS.find((v) => `#${v}` === hash) ?? "live";

/** Shows the view the fragment names (now and on every change) and tells `onShow`. */
export function viewSwitcher(root: Document, onShow: (view: ViewName) => void) {
  function show() {
    const view = viewOf(location.hash);
    for (const part of Array.from(root.querySelectorAll<HTMLElement>(".view[data-view]"))) part.hidden = part.dataset.view !== view;
    for (const link of Array.from(root.querySelectorAll<HTMLAnchorElement>("nav a[data-view-link]"))) {
      if (link.dataset.viewLink === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.body.dataset.view = view;
    onShow(view);
  }
  window.addEventListener("hashchange", show);
  show();
  return { current: () => viewOf(location.hash) };
}
