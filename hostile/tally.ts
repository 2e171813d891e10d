// What the suite saw: per attack, how many requests ended with which outcome, and which of those
// were failures (an outcome the attack does not accept: INTERNAL, a hang, a reset, a leak).

export interface AttackCount {
  outcomes: Record<string, number>;
  /** Requests whose outcome this attack does not accept. */
  notAccepted: number;
  /** A sample of them (the first 10), with what was sent. */
  failures: Array<{ outcome: string; what: string }>;
}

export class Tally {
  readonly attacks = new Map<string, AttackCount>();

  record(attack: string, outcome: string, accepted: readonly string[], what: string): void {
    let a = this.attacks.get(attack);
    if (!a) this.attacks.set(attack, (a = { outcomes: {}, notAccepted: 0, failures: [] }));
    a.outcomes[outcome] = (a.outcomes[outcome] ?? 0) + 1;
    if (accepted.includes(outcome)) return;
    a.notAccepted++;
    if (a.failures.length < 10) a.failures.push({ outcome, what });
  }

  total(outcome: string): number {
    let n = 0;
    for (const a of this.attacks.values()) n += a.outcomes[outcome] ?? 0;
    return n;
  }

  failures(): number {
    let n = 0;
    for (const a of this.attacks.values()) n += a.notAccepted;
    return n;
  }
}
