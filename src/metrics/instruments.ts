import { Counter, Gauge, Histogram, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration, type Registry } from "prom-client";

// Two roles can share one process and one registry (`herald dev`, tests), and each role builds the
// factories it needs: an instrument already registered under its name is the one to record into,
// where prom-client would throw on a second registration.

export function counterIn<T extends string>(registry: Registry, config: Omit<CounterConfiguration<T>, "registers">): Counter<T> {
  return (registry.getSingleMetric(config.name) as Counter<T> | undefined) ?? new Counter({ ...config, registers: [registry] });
}

export function gaugeIn<T extends string>(registry: Registry, config: Omit<GaugeConfiguration<T>, "registers">): Gauge<T> {
  return (registry.getSingleMetric(config.name) as Gauge<T> | undefined) ?? new Gauge({ ...config, registers: [registry] });
}

export function histogramIn<T extends string>(registry: Registry, config: Omit<HistogramConfiguration<T>, "registers">): Histogram<T> {
  return (registry.getSingleMetric(config.name) as Histogram<T> | undefined) ?? new Histogram({ ...config, registers: [registry] });
}
