// HDR histograms in microseconds: built the same way everywhere so worker histograms can be merged in the main thread.
import * as hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

export type { Histogram };

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

export function encode(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function mergeEncoded(into: Histogram, encoded: string): void {
  if (!encoded) return;
  into.add(hdr.decodeFromCompressedBase64(encoded));
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

const ms = (us: number): number => Math.round(us) / 1000;

/** Percentiles in milliseconds (three decimals: the histogram keeps microseconds). */
export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** The percentile distribution for plots: [percentile, ms] pairs on a log(1/(1-p)) grid up to what the count supports. */
export function distribution(h: Histogram): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (h.totalCount === 0) return out;
  const maxNines = Math.min(5, Math.log10(h.totalCount));
  for (let x = 0; x <= maxNines + 1e-9; x += 0.05) {
    const p = 100 * (1 - 10 ** -x);
    out.push([p, ms(h.getValueAtPercentile(p))]);
  }
  out.push([100, ms(h.maxValue)]);
  return out;
}
