// A confirm step inside the page (not window.confirm, which blocks the page
// and which a test cannot see): a box that says what is about to happen, with
// the action's own button and Cancel. One question at a time: asking again
// cancels the question still open.

export interface ConfirmBox {
  box: HTMLElement;
  text: HTMLElement;
  yes: HTMLButtonElement;
  no: HTMLButtonElement;
}

export function confirmStep({ box, text, yes, no }: ConfirmBox) {
  let pending: ((ok: boolean) => void) | undefined;

  function settle(ok: boolean) {
    const resolve = pending;
    pending = undefined;
    box.hidden = true;
    resolve?.(ok);
  }
  yes.addEventListener("click", () => settle(true));
  no.addEventListener("click", () => settle(false));

  return {
    /** Shows `question` with `action` on the confirming button; resolves true once confirmed. */
    ask(question: string, action: string): Promise<boolean> {
      settle(false);
      text.textContent = question;
      yes.textContent = action;
      box.hidden = false;
      yes.focus();
      return new Promise<boolean>((resolve) => (pending = resolve));
    },
    cancel: () => settle(false),
  };
}
