// Time series kept in the page: for each named line, the points of the last
// few minutes, oldest first. A value that could not be read (Kafka did not
// answer for the lag) is kept as a gap, NaN, so the chart breaks its line
// there instead of drawing a fall to zero that did not happen.

export interface Point {
  /** Milliseconds since the epoch (the server's observe time). */
  t: number;
  /** NaN: no value at this time. */
  v: number;
}

export interface SeriesSet {
  /** Adds a point to `name`, then drops points older than the window before the newest time seen. */
  record(name: string, t: number, v: number): void;
  /** The points of `name`, oldest first (empty when never recorded). */
  points(name: string): readonly Point[];
  /** The newest point of `name`. */
  last(name: string): Point | undefined;
  /**
   * The time the charts span: from the oldest point kept (at most the window
   * before the newest) to the newest, so a page open for a minute fills its
   * width with that minute; undefined before the first point.
   */
  span(): { from: number; to: number } | undefined;
}

export function seriesSet(windowMs: number): SeriesSet {
  const lines = new Map<string, Point[]>();
  let newest = -Infinity;

  function trim() {
    const from = newest - windowMs;
    for (const points of lines.values()) {
      let drop = 0;
      while (drop < points.length && points[drop]!.t < from) drop++;
      if (drop > 0) points.splice(0, drop);
    }
  }

  return {
    record(name, t, v) {
      let points = lines.get(name);
      if (!points) lines.set(name, (points = []));
      // A point older than the line's newest (a slow answer overtaken by a
      // later one) would draw the line backwards: it is dropped.
      const tail = points.at(-1);
      if (tail && t <= tail.t) return;
      points.push({ t, v });
      if (t > newest) {
        newest = t;
        trim();
      }
    },
    points: (name) => lines.get(name) ?? [],
    last: (name) => lines.get(name)?.at(-1),
    span() {
      if (newest === -Infinity) return undefined;
      let oldest = newest;
      for (const points of lines.values()) if (points[0] && points[0].t < oldest) oldest = points[0].t;
      return { from: Math.max(oldest, newest - windowMs), to: newest };
    },
  };
}
